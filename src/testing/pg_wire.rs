//! A counting relay for PostgreSQL's wire protocol: put it between the app and the server
//! and it tells how many round trips, statements and prepares a piece of work cost.
//!
//! Every message is forwarded unchanged; the relay only reads the framing (a type byte and
//! a length). A round trip is one `ReadyForQuery` from the server: the answer to each
//! `Sync` (extended protocol: a query, a connection check) and each simple `Query`
//! (`BEGIN`, `COMMIT` as sqlx sends them). The relay's URL asks for no TLS
//! (`sslmode=disable`): the client then sends no TLS or GSSAPI request, whose one-byte
//! answers have no framing, and the stream stays readable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What went over the wire, summed over every connection through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WireCounts {
    /// `ReadyForQuery` messages from the server: one per round trip.
    pub round_trips: u64,
    /// Statements executed: `Execute` messages and simple `Query` messages.
    pub statements: u64,
    /// `Parse` messages: statements prepared (a cached prepared statement sends none).
    pub prepares: u64,
    /// Simple `Query` messages (what sqlx sends for `BEGIN` and `COMMIT`).
    pub simple_queries: u64,
}

impl std::ops::Sub for WireCounts {
    type Output = WireCounts;

    fn sub(self, earlier: WireCounts) -> WireCounts {
        WireCounts {
            round_trips: self.round_trips - earlier.round_trips,
            statements: self.statements - earlier.statements,
            prepares: self.prepares - earlier.prepares,
            simple_queries: self.simple_queries - earlier.simple_queries,
        }
    }
}

#[derive(Default)]
struct Counters {
    ready: AtomicU64,
    executes: AtomicU64,
    parses: AtomicU64,
    queries: AtomicU64,
}

/// A relay on a free loopback port in front of the PostgreSQL server that `url` names.
pub struct PgWireCounter {
    /// `url` with its host and port replaced by the relay's, and TLS off.
    pub url: String,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl PgWireCounter {
    pub async fn start(url: &str) -> PgWireCounter {
        let mut relayed = url::Url::parse(url).expect("a PostgreSQL URL");
        let upstream = format!(
            "{}:{}",
            relayed.host_str().expect("the URL names a host"),
            relayed.port().unwrap_or(5432)
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        relayed.set_host(Some("127.0.0.1")).expect("a host");
        relayed.set_port(Some(port)).expect("a port");
        relayed.query_pairs_mut().append_pair("sslmode", "disable");
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let counters = shared.clone();
                tokio::spawn(relay(client, server, counters));
            }
        });
        PgWireCounter {
            url: relayed.to_string(),
            counters,
            task,
        }
    }

    /// The counts so far; subtract two readings for what happened between them.
    pub fn counts(&self) -> WireCounts {
        let read = |c: &AtomicU64| c.load(Ordering::SeqCst);
        let simple_queries = read(&self.counters.queries);
        WireCounts {
            round_trips: read(&self.counters.ready),
            statements: read(&self.counters.executes) + simple_queries,
            prepares: read(&self.counters.parses),
            simple_queries,
        }
    }
}

impl Drop for PgWireCounter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, counters: Arc<Counters>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = forward(client_read, server_write, Direction::ToServer, counters.clone());
    let down = forward(server_read, client_write, Direction::ToClient, counters);
    let _ = tokio::join!(up, down);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

/// Copies one direction, counting whole messages as they pass.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    direction: Direction,
    counters: Arc<Counters>,
) -> std::io::Result<()> {
    let mut framing = Framing::new(direction);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = from.read(&mut buffer).await?;
        if read == 0 {
            return to.shutdown().await;
        }
        for kind in framing.feed(&buffer[..read]) {
            let counter = match (direction, kind) {
                (Direction::ToClient, b'Z') => &counters.ready,
                (Direction::ToServer, b'E') => &counters.executes,
                (Direction::ToServer, b'P') => &counters.parses,
                (Direction::ToServer, b'Q') => &counters.queries,
                _ => continue,
            };
            counter.fetch_add(1, Ordering::SeqCst);
        }
        to.write_all(&buffer[..read]).await?;
    }
}

/// Splits a byte stream into the protocol's messages: a type byte and a big-endian length
/// that counts itself. The client's first message (the startup, or a TLS request before
/// it) has no type byte.
struct Framing {
    /// Bytes of the current message's header seen so far.
    header: Vec<u8>,
    /// Bytes of the current message's body still to pass.
    remaining: usize,
    /// The next message has no type byte (the client's startup).
    untyped: bool,
}

impl Framing {
    fn new(direction: Direction) -> Framing {
        Framing {
            header: Vec::with_capacity(5),
            remaining: 0,
            untyped: direction == Direction::ToServer,
        }
    }

    /// Takes the next bytes of the stream; returns the type of every message that began.
    fn feed(&mut self, mut bytes: &[u8]) -> Vec<u8> {
        let mut kinds = Vec::new();
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let skip = self.remaining.min(bytes.len());
                self.remaining -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            let header_len = if self.untyped { 4 } else { 5 };
            let take = (header_len - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.header.len() < header_len {
                break;
            }
            let length_bytes: [u8; 4] = self.header[header_len - 4..].try_into().expect("four bytes");
            let length = u32::from_be_bytes(length_bytes) as usize;
            if self.untyped {
                // The startup; after it, every message is typed.
                self.untyped = false;
            } else {
                kinds.push(self.header[0]);
            }
            self.remaining = length.saturating_sub(4);
            self.header.clear();
        }
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn framing_finds_every_message_however_the_stream_is_cut() {
        let mut stream = Vec::new();
        stream.extend_from_slice(&12u32.to_be_bytes());
        stream.extend_from_slice(&196608u32.to_be_bytes());
        stream.extend_from_slice(b"ab\0\0");
        for (kind, body) in [(b'P', &b"select 1"[..]), (b'B', b""), (b'E', b"\0\0\0\0"), (b'S', b"")] {
            stream.extend(message(kind, body));
        }
        for cut in 1..stream.len() {
            let mut framing = Framing::new(Direction::ToServer);
            let mut kinds = framing.feed(&stream[..cut]);
            kinds.extend(framing.feed(&stream[cut..]));
            assert_eq!(kinds, b"PBES".to_vec(), "cut at {cut}");
        }
    }
}
