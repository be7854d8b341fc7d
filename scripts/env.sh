# Shared by scripts/run and scripts/test: build caches live outside the clone, so a
# fresh clone on the same machine builds warm.
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/awx-onboard/target}"
mkdir -p "$CARGO_TARGET_DIR"
# cargo-leptos bakes this into the server at compile time; setting it for plain cargo
# too keeps `cargo test` and `cargo leptos build` from rebuilding each other's crates.
export LEPTOS_OUTPUT_NAME=awx-onboard
