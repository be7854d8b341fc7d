//! The `awx-onboard` binary: `serve` (default), `sim`, `create-operator`.

use std::process::ExitCode;

// Rendering allocates a lot of small strings; mimalloc handles that better than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    awx_onboard_server::telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match awx_onboard_server::cli::run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("awx-onboard: {error:#}");
            ExitCode::FAILURE
        }
    }
}
