//! The sandbox's SMTP mailbox: a small SMTP server on loopback (no TLS: the config's
//! `tls: none` mode) that accepts every message sent to it — the push-completion email — and
//! keeps it in memory (the last 1,000), and the admin endpoints that list, show and empty what it received
//! (`GET /_sandbox/mail`, `GET /_sandbox/mail/{id}`, `DELETE /_sandbox/mail`), served on both
//! simulators.
//!
//! The server speaks enough of RFC 5321 for a real client: `EHLO`/`HELO`, `AUTH PLAIN` and
//! `AUTH LOGIN` accepting any credentials, `MAIL FROM` (with `SIZE=`), `RCPT TO`, `DATA` with
//! dot-unstuffing, `RSET`, `NOOP`, `HELP`, `QUIT`, with the standard reply codes; a message over
//! the size cap is refused with 552, an unknown command gets 500, a known one it does not
//! offer (`STARTTLS`, `VRFY`, …) 502. Showing a message decodes its headers (RFC 2047 encoded
//! words) and its text body (quoted-printable or base64).

use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::common::{json_response, lock};

/// The default size cap of one message (10 MiB), as announced in `EHLO`'s `SIZE`.
pub const DEFAULT_MAX_BYTES: usize = 10 * 1024 * 1024;

/// Longest command line accepted (RFC 5321 allows 512 octets; clients' `AUTH` lines can be
/// longer).
const MAX_COMMAND_LINE: u64 = 4096;

/// Longest text line inside `DATA` (RFC 5321: 1000 octets; kept generous).
const MAX_DATA_LINE: u64 = 64 * 1024;

/// Recipients per message.
const MAX_RECIPIENTS: usize = 100;

/// Messages kept: past this, the oldest is dropped.
const MAX_MESSAGES: usize = 1000;

/// How long a connection may stay silent.
const IDLE: Duration = Duration::from_secs(300);

/// The name the server greets with.
const HOSTNAME: &str = "mail.sandbox.tandem";

/// One received message.
#[derive(Debug, Clone)]
struct Received {
    id: u64,
    from: String,
    to: Vec<String>,
    at: DateTime<Utc>,
    data: Vec<u8>,
}

/// What the mailbox holds.
#[derive(Debug, Default)]
struct Inner {
    messages: Vec<Received>,
    next_id: u64,
}

/// The messages received so far, and the size cap.
#[derive(Debug)]
pub struct Mailbox {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

impl Mailbox {
    /// An empty mailbox refusing messages over `max_bytes`.
    pub fn new(max_bytes: usize) -> Mailbox {
        Mailbox {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    fn store(&self, from: String, to: Vec<String>, data: Vec<u8>) -> u64 {
        let mut inner = lock(&self.inner);
        inner.next_id += 1;
        let id = inner.next_id;
        if inner.messages.len() >= MAX_MESSAGES {
            inner.messages.remove(0);
        }
        inner.messages.push(Received {
            id,
            from,
            to,
            at: Utc::now(),
            data,
        });
        id
    }

    /// How many messages it holds.
    pub fn count(&self) -> usize {
        lock(&self.inner).messages.len()
    }
}

// ---------------------------------------------------------------------------------------------
// The SMTP server

/// Accepts SMTP connections on `listener` until `cancel`.
pub async fn serve(listener: TcpListener, mailbox: Arc<Mailbox>, cancel: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let mailbox = mailbox.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = cancel.cancelled() => {}
                r = session(stream, &mailbox) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "sandbox mailbox connection ended");
                    }
                }
            }
        });
    }
}

/// The envelope of the transaction in progress.
#[derive(Debug, Default)]
struct Envelope {
    from: Option<String>,
    to: Vec<String>,
}

/// Reads one line (up to `max` bytes, without its line end). `None` at end of input;
/// `Some(Err(()))` for a line that is too long (the rest of it is discarded).
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: u64,
) -> std::io::Result<Option<Result<Vec<u8>, ()>>> {
    let mut line = Vec::new();
    let n = tokio::time::timeout(IDLE, (&mut *reader).take(max).read_until(b'\n', &mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
    if n == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        // Too long (or cut short at the end of input): skip to the end of the line.
        let mut rest = Vec::new();
        loop {
            rest.clear();
            let m = (&mut *reader)
                .take(MAX_DATA_LINE)
                .read_until(b'\n', &mut rest)
                .await?;
            if m == 0 || rest.last() == Some(&b'\n') {
                break;
            }
        }
        return Ok(Some(Err(())));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(Ok(line)))
}

/// The address inside `FROM:<…>` / `TO:<…>` (after the keyword), and the parameters after it.
fn path_argument<'a>(arg: &'a str, keyword: &str) -> Option<(&'a str, &'a str)> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let (address, params) = rest.split_once('>')?;
    if address.contains(['<', ' ']) {
        return None;
    }
    Some((address, params.trim()))
}

/// Serves one connection.
async fn session(stream: TcpStream, mailbox: &Mailbox) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let reply = |mut text: String| {
        text.push_str("\r\n");
        text
    };
    write
        .write_all(reply(format!("220 {HOSTNAME} ESMTP Tandem sandbox mailbox")).as_bytes())
        .await?;
    let mut greeted = false;
    let mut envelope = Envelope::default();
    loop {
        let line = match read_line(&mut reader, MAX_COMMAND_LINE).await? {
            None => return Ok(()),
            Some(Err(())) => {
                write
                    .write_all(reply("500 5.5.2 Line too long".into()).as_bytes())
                    .await?;
                continue;
            }
            Some(Ok(l)) => String::from_utf8_lossy(&l).into_owned(),
        };
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
            None => (line.trim().to_ascii_uppercase(), ""),
        };
        let answer = match verb.as_str() {
            "EHLO" if arg.is_empty() => "501 5.5.4 EHLO needs a domain or address".to_string(),
            "EHLO" => {
                greeted = true;
                envelope = Envelope::default();
                format!(
                    "250-{HOSTNAME} greets {arg}\r\n250-SIZE {}\r\n250-8BITMIME\r\n\
                     250-AUTH PLAIN LOGIN\r\n250 HELP",
                    mailbox.max_bytes
                )
            }
            "HELO" if arg.is_empty() => "501 5.5.4 HELO needs a domain or address".to_string(),
            "HELO" => {
                greeted = true;
                envelope = Envelope::default();
                format!("250 {HOSTNAME}")
            }
            "AUTH" if !greeted => "503 5.5.1 Say EHLO first".to_string(),
            "AUTH" => match auth(&mut reader, &mut write, arg).await? {
                Some(answer) => answer,
                None => return Ok(()),
            },
            "MAIL" if !greeted => "503 5.5.1 Say EHLO or HELO first".to_string(),
            "MAIL" if envelope.from.is_some() => "503 5.5.1 Sender already given".to_string(),
            "MAIL" => match path_argument(arg, "FROM:") {
                None => "501 5.5.4 Syntax: MAIL FROM:<address>".to_string(),
                Some((address, params)) => {
                    let declared = params.split_whitespace().find_map(|p| {
                        let (k, v) = p.split_once('=')?;
                        k.eq_ignore_ascii_case("SIZE")
                            .then(|| v.parse::<usize>().ok())
                            .flatten()
                    });
                    if declared.is_some_and(|n| n > mailbox.max_bytes) {
                        "552 5.3.4 Message size exceeds fixed maximum message size".to_string()
                    } else {
                        envelope.from = Some(address.to_string());
                        "250 2.1.0 Sender OK".to_string()
                    }
                }
            },
            "RCPT" if envelope.from.is_none() => "503 5.5.1 Need MAIL before RCPT".to_string(),
            "RCPT" => match path_argument(arg, "TO:") {
                None => "501 5.5.4 Syntax: RCPT TO:<address>".to_string(),
                Some(("", _)) => "501 5.1.3 Empty recipient address".to_string(),
                Some(_) if envelope.to.len() >= MAX_RECIPIENTS => {
                    "452 4.5.3 Too many recipients".to_string()
                }
                Some((address, _)) => {
                    envelope.to.push(address.to_string());
                    "250 2.1.5 Recipient OK".to_string()
                }
            },
            "DATA" if !arg.is_empty() => "501 5.5.4 DATA takes no argument".to_string(),
            "DATA" if envelope.to.is_empty() => "503 5.5.1 Need RCPT before DATA".to_string(),
            "DATA" => {
                write
                    .write_all(reply("354 End data with <CR><LF>.<CR><LF>".into()).as_bytes())
                    .await?;
                let Some(data) = read_data(&mut reader, mailbox.max_bytes).await? else {
                    return Ok(());
                };
                let envelope = std::mem::take(&mut envelope);
                match data {
                    Some(data) => {
                        let id =
                            mailbox.store(envelope.from.unwrap_or_default(), envelope.to, data);
                        format!("250 2.0.0 OK: queued as {id}")
                    }
                    None => "552 5.3.4 Message size exceeds fixed maximum message size".to_string(),
                }
            }
            "RSET" => {
                envelope = Envelope::default();
                "250 2.0.0 OK".to_string()
            }
            "NOOP" => "250 2.0.0 OK".to_string(),
            "HELP" => {
                "214 2.0.0 Commands: EHLO HELO AUTH MAIL RCPT DATA RSET NOOP QUIT".to_string()
            }
            "QUIT" => {
                write
                    .write_all(reply("221 2.0.0 Bye".into()).as_bytes())
                    .await?;
                return Ok(());
            }
            "STARTTLS" | "VRFY" | "EXPN" | "TURN" | "ETRN" | "BDAT" | "SEND" | "SOML" | "SAML" => {
                "502 5.5.1 Command not implemented".to_string()
            }
            _ => "500 5.5.2 Command unrecognized".to_string(),
        };
        write.write_all(reply(answer).as_bytes()).await?;
    }
}

/// `AUTH PLAIN [initial]` or `AUTH LOGIN [user]`: any credentials are accepted. The reply to
/// send, or `None` when the client went away.
async fn auth<R: AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
    reader: &mut BufReader<R>,
    write: &mut W,
    arg: &str,
) -> std::io::Result<Option<String>> {
    let (mechanism, initial) = match arg.split_once(' ') {
        Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_string())),
        None => (arg.to_ascii_uppercase(), None),
    };
    let decodes = |s: &str| s == "=" || base64::engine::general_purpose::STANDARD.decode(s).is_ok();
    // The client's answer to one challenge: `Some(Err(reply))` ends the exchange.
    async fn answer<R: AsyncRead + Unpin, W: tokio::io::AsyncWrite + Unpin>(
        reader: &mut BufReader<R>,
        write: &mut W,
        challenge: &str,
    ) -> std::io::Result<Option<String>> {
        write
            .write_all(format!("334 {challenge}\r\n").as_bytes())
            .await?;
        Ok(match read_line(reader, MAX_COMMAND_LINE).await? {
            None => None,
            Some(Err(())) => Some(String::new()),
            Some(Ok(l)) => Some(String::from_utf8_lossy(&l).trim().to_string()),
        })
    }
    let ok = "235 2.7.0 Authentication successful".to_string();
    let bad = "501 5.5.2 Cannot decode the response".to_string();
    let cancelled = "501 5.7.0 Authentication cancelled".to_string();
    match mechanism.as_str() {
        "PLAIN" => {
            let response = match initial {
                Some(i) => i,
                None => match answer(reader, write, "").await? {
                    Some(r) => r,
                    None => return Ok(None),
                },
            };
            Ok(Some(if response == "*" {
                cancelled
            } else if decodes(&response) {
                ok
            } else {
                bad
            }))
        }
        "LOGIN" => {
            let user = match initial {
                Some(i) => i,
                None => match answer(reader, write, "VXNlcm5hbWU6").await? {
                    Some(r) => r,
                    None => return Ok(None),
                },
            };
            if user == "*" {
                return Ok(Some(cancelled));
            }
            if !decodes(&user) {
                return Ok(Some(bad));
            }
            let Some(password) = answer(reader, write, "UGFzc3dvcmQ6").await? else {
                return Ok(None);
            };
            Ok(Some(if password == "*" {
                cancelled
            } else if decodes(&password) {
                ok
            } else {
                bad
            }))
        }
        "" => Ok(Some("501 5.5.4 Syntax: AUTH mechanism".to_string())),
        _ => Ok(Some(
            "504 5.5.4 Unrecognized authentication type".to_string(),
        )),
    }
}

/// Reads the message after `354` up to the line holding a single `.`, removing the leading dot
/// of every other line that starts with one. `None` when the client went away; `Some(None)`
/// when the message was larger than `max` (read to its end and dropped).
async fn read_data<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Option<Option<Vec<u8>>>> {
    let mut data = Vec::new();
    let mut too_big = false;
    loop {
        let line = match read_line(reader, MAX_DATA_LINE).await? {
            None => return Ok(None),
            Some(Err(())) => {
                too_big = true;
                continue;
            }
            Some(Ok(l)) => l,
        };
        if line == b"." {
            break;
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        if too_big || data.len() + line.len() + 2 > max {
            too_big = true;
            data.clear();
            continue;
        }
        data.extend_from_slice(line);
        data.extend_from_slice(b"\r\n");
    }
    Ok(Some((!too_big).then_some(data)))
}

// ---------------------------------------------------------------------------------------------
// Reading a message

/// The header fields of `text` (unfolded, in order) and where the body starts.
fn split_message(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = match text.find("\r\n\r\n") {
        Some(i) => (&text[..i], &text[i + 4..]),
        None => match text.find("\n\n") {
            Some(i) => (&text[..i], &text[i + 2..]),
            None => (text, ""),
        },
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = headers.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    (headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Decodes quoted-printable text (`=XX` escapes, `=` soft line breaks; `_` as space in encoded
/// words).
fn quoted_printable(text: &str, underscore_space: bool) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' => {
                let rest = &bytes[i + 1..];
                if rest.starts_with(b"\r\n") {
                    i += 3;
                } else if rest.starts_with(b"\n") {
                    i += 2;
                } else if rest.len() >= 2
                    && let Ok(s) = std::str::from_utf8(&rest[..2])
                    && let Ok(b) = u8::from_str_radix(s, 16)
                {
                    out.push(b);
                    i += 3;
                } else {
                    out.push(b'=');
                    i += 1;
                }
            }
            b'_' if underscore_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// A header value with its RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`) decoded.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        let after = &rest[start + 2..];
        let decoded = (|| {
            let (charset, after) = after.split_once('?')?;
            let (encoding, after) = after.split_once('?')?;
            let (text, after) = after.split_once("?=")?;
            let _ = charset;
            let bytes = match encoding.to_ascii_uppercase().as_str() {
                "B" => base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .ok()?,
                "Q" => quoted_printable(text, true),
                _ => return None,
            };
            Some((String::from_utf8_lossy(&bytes).into_owned(), after))
        })();
        match decoded {
            Some((word, after)) => {
                // Whitespace between two encoded words is not part of the text.
                if !(last_was_word && before.trim().is_empty()) {
                    out.push_str(before);
                }
                out.push_str(&word);
                rest = after;
                last_was_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = after;
                last_was_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The body decoded by its `Content-Transfer-Encoding`, as text.
fn decode_body(headers: &[(String, String)], body: &str) -> String {
    let encoding = header(headers, "Content-Transfer-Encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "quoted-printable" => quoted_printable(body, false),
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .unwrap_or_else(|_| body.as_bytes().to_vec())
        }
        _ => body.as_bytes().to_vec(),
    };
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}

impl Received {
    fn summary(&self) -> Value {
        let text = String::from_utf8_lossy(&self.data);
        let (headers, _) = split_message(&text);
        json!({
            "id": self.id,
            "from": self.from,
            "to": self.to,
            "subject": header(&headers, "Subject").map(decode_words),
            "received_at": self.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            "size": self.data.len(),
        })
    }

    fn full(&self) -> Value {
        let text = String::from_utf8_lossy(&self.data);
        let (headers, body) = split_message(&text);
        let mut v = self.summary();
        v["headers"] = Value::Array(
            headers
                .iter()
                .map(|(n, value)| json!({"name": n, "value": decode_words(value)}))
                .collect(),
        );
        v["body"] = Value::String(decode_body(&headers, body));
        v["raw"] = Value::String(text.into_owned());
        v
    }
}

// ---------------------------------------------------------------------------------------------
// Admin endpoints

/// `/_sandbox/mail` and `/_sandbox/mail/{id}`, merged into each simulator's router.
pub fn router(mailbox: Arc<Mailbox>) -> Router {
    Router::new()
        .route("/_sandbox/mail", get(list).delete(clear))
        .route("/_sandbox/mail/{id}", get(show))
        .with_state(mailbox)
}

/// `GET /_sandbox/mail`: every message received, oldest first, without its text.
async fn list(State(mailbox): State<Arc<Mailbox>>) -> Response {
    let items: Vec<Value> = lock(&mailbox.inner)
        .messages
        .iter()
        .map(Received::summary)
        .collect();
    json_response(StatusCode::OK, &Value::Array(items))
}

/// `GET /_sandbox/mail/{id}`: one message with its headers and decoded text body.
async fn show(State(mailbox): State<Arc<Mailbox>>, Path(id): Path<String>) -> Response {
    let found = id.parse::<u64>().ok().and_then(|id| {
        lock(&mailbox.inner)
            .messages
            .iter()
            .find(|m| m.id == id)
            .cloned()
    });
    match found {
        Some(m) => json_response(StatusCode::OK, &m.full()),
        None => json_response(
            StatusCode::NOT_FOUND,
            &json!({"error": format!("no message `{id}` in the sandbox mailbox")}),
        ),
    }
}

/// `DELETE /_sandbox/mail`: empties the mailbox.
async fn clear(State(mailbox): State<Arc<Mailbox>>) -> Response {
    let mut inner = lock(&mailbox.inner);
    let deleted = inner.messages.len();
    inner.messages.clear();
    json_response(StatusCode::OK, &json!({"deleted": deleted}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_and_bodies_decode() {
        assert_eq!(
            decode_words("=?utf-8?b?U29jacOpdMOp?= =?utf-8?q?_G=C3=A9n=C3=A9rale?= Ltd"),
            "Société Générale Ltd"
        );
        assert_eq!(decode_words("plain subject"), "plain subject");
        let headers = vec![(
            "Content-Transfer-Encoding".to_string(),
            "quoted-printable".to_string(),
        )];
        assert_eq!(
            decode_body(&headers, "caf=C3=A9 =\r\nau lait"),
            "café au lait"
        );
    }
}
