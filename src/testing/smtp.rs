//! A real SMTP server for tests and benchmarks: it speaks enough of RFC 5321 for lettre
//! (EHLO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT), keeps what it receives,
//! and can be told to refuse for a while (451) or for good (550).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How the sink answers a sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    Accept,
    /// `451 4.3.0` to every `MAIL FROM`: try again later.
    RefuseForNow,
    /// `550 5.7.1` to every `MAIL FROM`: never.
    Reject,
}

/// One message as received.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, as sent (CRLF line ends, dots unstuffed).
    pub data: String,
}

impl ReceivedMail {
    /// A header's value (the first one of that name; folded lines joined).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if let Some(v) = value.as_mut() {
                if line.starts_with([' ', '\t']) {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                break;
            }
            if let Some((key, rest)) = line.split_once(':') {
                if key.eq_ignore_ascii_case(name) {
                    value = Some(rest.trim().to_string());
                }
            }
        }
        value
    }

    /// The decoded body of the part with this content type (`text/plain`, `text/html`).
    pub fn part(&self, content_type: &str) -> Option<String> {
        // Parts are split at the message's own boundary: a body line may begin with "--".
        let separator = self
            .header("content-type")
            .and_then(|value| {
                let start = value.find("boundary=")? + "boundary=".len();
                let boundary = value[start..].split(';').next()?.trim().trim_matches('"').to_string();
                Some(format!("\r\n--{boundary}"))
            })
            .unwrap_or_else(|| "\r\n--".to_string());
        for section in self.data.split(separator.as_str()) {
            let Some((head, body)) = section.split_once("\r\n\r\n") else {
                continue;
            };
            let lower = head.to_ascii_lowercase();
            if !lower.contains(&format!("content-type: {content_type}")) {
                continue;
            }
            let body = body.trim_end_matches("\r\n");
            return Some(if lower.contains("content-transfer-encoding: quoted-printable") {
                decode_quoted_printable(body)
            } else if lower.contains("content-transfer-encoding: base64") {
                use base64::Engine;
                let joined: String = body.split_whitespace().collect();
                String::from_utf8_lossy(
                    &base64::engine::general_purpose::STANDARD
                        .decode(joined)
                        .unwrap_or_default(),
                )
                .into_owned()
            } else {
                body.to_string()
            });
        }
        None
    }

    /// Every `http(s)://` URL in the plain-text part.
    pub fn links(&self) -> Vec<String> {
        let text = self.part("text/plain").unwrap_or_default();
        text.split_whitespace()
            .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(|w| w.trim_end_matches(['.', ',', ')']).to_string())
            .collect()
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            if let Some(byte) = joined.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Shared {
    received: Mutex<Vec<ReceivedMail>>,
    /// Subjects (their beginnings) that [`SmtpSink::received`] leaves out.
    ignored: Mutex<Vec<String>>,
    mode: AtomicU8,
    arrived: Notify,
    conversations: AtomicUsize,
}

/// A listening SMTP sink; stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> std::io::Result<SmtpSink> {
        SmtpSink::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Listens on `addr` (to come back on the port a test saw refused).
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<SmtpSink> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            ignored: Mutex::new(Vec::new()),
            mode: AtomicU8::new(0),
            arrived: Notify::new(),
            conversations: AtomicUsize::new(0),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            let mut conversations = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                serving.conversations.fetch_add(1, Ordering::SeqCst);
                conversations.spawn(converse(stream, serving.clone()));
            }
        });
        Ok(SmtpSink { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://127.0.0.1:PORT`, for `SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn set_mode(&self, mode: SinkMode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// What arrived, oldest first (without the subjects [`ignore_subject`](Self::ignore_subject) names).
    pub fn received(&self) -> Vec<ReceivedMail> {
        let ignored = self.shared.ignored.lock().expect("sink lock").clone();
        self.shared
            .received
            .lock()
            .expect("sink lock")
            .iter()
            .filter(|m| {
                let subject = m.header("Subject").unwrap_or_default();
                !ignored.iter().any(|prefix| subject.starts_with(prefix.as_str()))
            })
            .cloned()
            .collect()
    }

    /// Leaves messages whose subject begins with `prefix` out of what this sink reports
    /// (tests about other mail than, say, the address verification every sign-up sends).
    pub fn ignore_subject(&self, prefix: &str) {
        self.shared.ignored.lock().expect("sink lock").push(prefix.to_string());
    }

    /// SMTP conversations opened so far.
    pub fn conversations(&self) -> usize {
        self.shared.conversations.load(Ordering::SeqCst)
    }

    /// Waits until at least `count` messages arrived (or `timeout` passed); returns them.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.arrived.notified();
            let received = self.received();
            if received.len() >= count || tokio::time::Instant::now() >= deadline {
                return received;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// Stops listening (and drops the conversations in progress).
    pub fn stop(self) {}
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn mode(shared: &Shared) -> SinkMode {
    match shared.mode.load(Ordering::SeqCst) {
        1 => SinkMode::RefuseForNow,
        2 => SinkMode::Reject,
        _ => SinkMode::Accept,
    }
}

/// Reads the client's next line into `line`; `false` once the connection has ended.
async fn next_line(lines: &mut BufReader<OwnedReadHalf>, line: &mut String) -> bool {
    line.clear();
    matches!(lines.read_line(line).await, Ok(read) if read > 0)
}

async fn converse(stream: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write.write_all(b"220 sink.test ESMTP ready\r\n").await.is_err() {
        return;
    }
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        if !next_line(&mut lines, &mut line).await {
            return;
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"
        } else if upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            match mode(&shared) {
                SinkMode::Accept => {
                    from = address(&command[10..]);
                    to.clear();
                    b"250 2.1.0 ok\r\n"
                }
                SinkMode::RefuseForNow => b"451 4.3.0 sink is busy, try again later\r\n",
                SinkMode::Reject => b"550 5.7.1 sink refuses this sender\r\n",
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&command[8..]));
            b"250 2.1.5 ok\r\n"
        } else if upper == "DATA" {
            if write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await.is_err() {
                return;
            }
            let mut data = String::new();
            loop {
                if !next_line(&mut lines, &mut line).await {
                    return;
                }
                if line == ".\r\n" || line == ".\n" {
                    break;
                }
                let unstuffed = line.strip_prefix('.').unwrap_or(&line);
                data.push_str(unstuffed);
            }
            let id = {
                let mut received = shared.received.lock().expect("sink lock");
                received.push(ReceivedMail {
                    from: std::mem::take(&mut from),
                    to: std::mem::take(&mut to),
                    data,
                });
                received.len()
            };
            shared.arrived.notify_waiters();
            let answer = format!("250 2.0.0 queued as {id}\r\n");
            if write.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            continue;
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
            return;
        } else {
            // RSET, NOOP and anything else.
            b"250 2.0.0 ok\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

/// `<a@b>` and any parameters after it → `a@b`.
fn address(text: &str) -> String {
    let text = text.trim();
    match (text.find('<'), text.find('>')) {
        (Some(start), Some(end)) if start < end => text[start + 1..end].to_string(),
        _ => text.split_whitespace().next().unwrap_or("").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::ReceivedMail;

    /// A multipart message as lettre writes it, whose plain part has a line beginning with
    /// `--` (a quoted-printable line of a long link can).
    fn message(text_body: &str) -> ReceivedMail {
        let data = format!(
            "From: awx-onboard <noreply@example.com>\r\n\
             Content-Type: multipart/alternative;\r\n boundary=\"XYZ123\"\r\n\
             MIME-Version: 1.0\r\n\r\n\
             --XYZ123\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\n\
             {text_body}\r\n\
             --XYZ123\r\n\
             Content-Type: text/html; charset=utf-8\r\n\r\n\
             <p>html</p>\r\n\
             --XYZ123--\r\n"
        );
        ReceivedMail {
            from: "noreply@example.com".into(),
            to: vec!["someone@example.com".into()],
            data,
        }
    }

    #[test]
    fn a_part_whose_line_begins_with_two_dashes_comes_back_whole() {
        let mail = message("Accept: http://127.0.0.1:4000/invitation/ab=\r\n--cd-ef\r\nThanks.");
        assert_eq!(
            mail.part("text/plain").as_deref(),
            Some("Accept: http://127.0.0.1:4000/invitation/ab--cd-ef\r\nThanks.")
        );
        assert_eq!(mail.part("text/html").as_deref(), Some("<p>html</p>"));
        assert_eq!(
            mail.links(),
            vec!["http://127.0.0.1:4000/invitation/ab--cd-ef".to_string()]
        );
    }
}
