//! The sandbox's SMTP mailbox: a real `tandem push` with the email turned on by the variables
//! `tandem sandbox --env` exports delivers one message that `/_sandbox/mail` lists and shows;
//! and the SMTP server's protocol spoken by hand over TCP (greeting, AUTH, dot-unstuffing,
//! RSET, the size cap's 552, unknown and unoffered commands).

use std::time::Duration;

use serde_json::Value;
use tandem_engine::store::{LogBody, LogQuery};
use tandem_sandbox::{RateLimits, Sandbox, SandboxOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::support::admin::get;
use crate::support::exec::*;

async fn mail_sandbox(max_bytes: Option<usize>) -> Sandbox {
    let mut opts = SandboxOptions {
        seed: 23,
        companies: 8,
        contacts: 30,
        rate_limits: RateLimits::unlimited(),
        ..Default::default()
    };
    if let Some(m) = max_bytes {
        opts.mail_max_bytes = m;
    }
    Sandbox::start(opts).await.expect("sandbox starts")
}

#[tokio::test]
async fn a_push_emails_its_summary_to_the_sandbox_mailbox() {
    let sb = mail_sandbox(None).await;
    // The project's tandem.yaml has no `notify` block, as the shipped one: the variables that
    // `tandem sandbox --env` exports turn the email on and point it at the mailbox.
    let mut p = Project::new(&sb, "");
    let info = sb.info();
    assert_eq!(info["mail"]["server"], sb.mail_server());
    assert_eq!(info["mail"]["tls"], "none");
    let vars = tandem::cli::sandbox::env_vars(&info, None);
    for (k, v) in &vars {
        if k.starts_with("TANDEM_SMTP_") {
            p.env.insert(k.to_string(), v.clone());
        }
    }
    assert_eq!(p.env["TANDEM_SMTP_SERVER"], sb.mail_server());
    assert!(
        get(format!("{}/_sandbox/mail", sb.hubspot_url()))
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );

    let out = run(&p, &["push", "--force"]).await;
    assert_code(&out, 0, "push");

    // What the run counted, from its sync log.
    let store = p.store().await;
    let log = store.log(&LogQuery::default()).await.unwrap();
    let finished = log
        .iter()
        .find_map(|e| match &e.body {
            LogBody::RunFinished(f) => Some((e.job, f.clone())),
            _ => None,
        })
        .expect("the push finished");
    let (job, finished) = (finished.0.unwrap(), finished.1);
    let c = finished.counts;
    assert!(c.created + c.updated > 0, "the push wrote nothing: {c:?}");
    assert!(
        log.iter().any(|e| matches!(&e.body, LogBody::Notice(n)
        if n.message == format!(
            "push summary for job {job} emailed to {}",
            tandem::cli::sandbox::SANDBOX_MAIL_TO
        ))),
        "no `emailed` notice in the log"
    );

    // Listed on both simulators, once.
    for base in [sb.hubspot_url(), sb.accelo_url()] {
        let list = get(format!("{base}/_sandbox/mail")).await;
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 1, "{list:?}");
        let m = &list[0];
        assert_eq!(m["id"], 1);
        assert_eq!(m["from"], "tandem@sandbox.invalid");
        assert_eq!(
            m["to"],
            serde_json::json!([tandem::cli::sandbox::SANDBOX_MAIL_TO])
        );
        assert_eq!(
            m["subject"],
            format!(
                "Tandem push finished: {} created, {} updated, {} failed (job {job})",
                c.created, c.updated, c.failed
            )
        );
        assert!(
            m["received_at"]
                .as_str()
                .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()),
            "{m}"
        );
    }

    // Shown with its headers and its decoded text body.
    let full = get(format!("{}/_sandbox/mail/1", sb.hubspot_url())).await;
    let headers = full["headers"].as_array().unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| {
                h["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
            })
            .map(|h| h["value"].as_str().unwrap_or_default().to_string())
    };
    assert_eq!(
        header("From").as_deref(),
        Some("Tandem <tandem@sandbox.invalid>")
    );
    assert_eq!(
        header("Subject").as_deref(),
        full["subject"].as_str(),
        "{full}"
    );
    let body = full["body"].as_str().unwrap();
    for (label, n) in [
        ("created", c.created),
        ("updated", c.updated),
        ("failed", c.failed),
    ] {
        assert!(
            body.lines().any(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(label) && w.next() == Some(n.to_string().as_str())
            }),
            "no `{label} {n}` line in the body:\n{body}"
        );
    }
    assert!(body.contains(&format!("tandem log --job {job}")), "{body}");
    assert_eq!(sb.mail_count(), 1);

    // An unknown id is a 404; DELETE empties the mailbox.
    let r = reqwest::get(format!("{}/_sandbox/mail/99", sb.hubspot_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = reqwest::Client::new()
        .delete(format!("{}/_sandbox/mail", sb.accelo_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["deleted"], 1);
    assert!(
        get(format!("{}/_sandbox/mail", sb.hubspot_url()))
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn without_the_recipient_variable_the_server_override_turns_no_email_on() {
    let sb = mail_sandbox(None).await;
    let mut p = Project::new(&sb, "");
    p.env
        .insert("TANDEM_SMTP_SERVER".into(), sb.mail_server().to_string());
    p.env.insert("TANDEM_SMTP_TLS".into(), "none".into());
    let out = run(&p, &["push", "--force"]).await;
    assert_code(&out, 0, "push");
    assert_eq!(sb.mail_count(), 0);
    let log = p.store().await.log(&LogQuery::default()).await.unwrap();
    assert!(log.iter().any(|e| matches!(&e.body, LogBody::Notice(n)
        if n.message.contains("email is not configured"))));
}

// ---------------------------------------------------------------------------------------------
// The protocol by hand

struct Client {
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl Client {
    async fn connect(sb: &Sandbox) -> (Client, (u16, String)) {
        let stream = TcpStream::connect(sb.mail_server()).await.unwrap();
        let (r, w) = stream.into_split();
        let mut c = Client {
            read: BufReader::new(r),
            write: w,
        };
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// One reply: its code and its lines' text joined by `\n`.
    async fn reply(&mut self) -> (u16, String) {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(10), self.read.read_line(&mut line))
                .await
                .expect("a reply within 10 s")
                .unwrap();
            assert!(n > 0, "the server closed the connection");
            let line = line.trim_end_matches(['\r', '\n']);
            assert!(line.len() >= 3, "short reply line `{line}`");
            let code: u16 = line[..3].parse().unwrap();
            text.push(line.get(4..).unwrap_or_default().to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return (code, text.join("\n"));
            }
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    /// Sends `line` (CRLF added) and reads the reply.
    async fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    async fn code(&mut self, line: &str) -> u16 {
        self.cmd(line).await.0
    }
}

async fn messages(sb: &Sandbox) -> Vec<Value> {
    get(format!("{}/_sandbox/mail", sb.hubspot_url()))
        .await
        .as_array()
        .unwrap()
        .clone()
}

async fn message(sb: &Sandbox, id: &Value) -> Value {
    get(format!("{}/_sandbox/mail/{id}", sb.hubspot_url())).await
}

#[tokio::test]
async fn the_mailbox_speaks_smtp_with_auth_and_dot_unstuffing() {
    let sb = mail_sandbox(None).await;
    let (mut c, (code, _)) = Client::connect(&sb).await;
    assert_eq!(code, 220);
    // Nothing before the greeting.
    assert_eq!(c.code("MAIL FROM:<a@example.com>").await, 503);
    assert_eq!(c.code("EHLO").await, 501);
    let (code, ehlo) = c.cmd("EHLO client.example").await;
    assert_eq!(code, 250);
    assert!(ehlo.lines().any(|l| l == "AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(ehlo.lines().any(|l| l.starts_with("SIZE ")), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    // Any credentials: PLAIN with an initial response, LOGIN through its two challenges.
    assert_eq!(c.code("AUTH PLAIN AHVzZXIAcGFzc3dvcmQ=").await, 235);
    assert_eq!(c.cmd("AUTH LOGIN").await, (334, "VXNlcm5hbWU6".into()));
    assert_eq!(c.cmd("dXNlcg==").await, (334, "UGFzc3dvcmQ6".into()));
    assert_eq!(c.code("cGFzc3dvcmQ=").await, 235);
    assert_eq!(c.code("AUTH CRAM-MD5").await, 504);
    assert_eq!(c.code("AUTH PLAIN !!!notbase64").await, 501);
    // Order: RCPT needs MAIL, DATA needs RCPT.
    assert_eq!(c.code("RCPT TO:<b@example.com>").await, 503);
    assert_eq!(c.code("MAIL FROM:a@example.com").await, 501);
    assert_eq!(c.code("mail from:<a@example.com>").await, 250);
    assert_eq!(c.code("MAIL FROM:<again@example.com>").await, 503);
    assert_eq!(c.code("DATA").await, 503);
    assert_eq!(c.code("RCPT TO:<b@example.com>").await, 250);
    assert_eq!(c.code("RCPT TO:<c@example.com> NOTIFY=NEVER").await, 250);
    assert_eq!(c.code("NOOP").await, 250);
    assert_eq!(c.code("DATA").await, 354);
    c.send_raw(
        b"From: A <a@example.com>\r\n\
          To: b@example.com\r\n\
          Subject: =?utf-8?q?Caf=C3=A9?= report\r\n\
          X-Long: first part\r\n  folded part\r\n\
          \r\n\
          first line\r\n\
          ..one leading dot kept\r\n\
          ...two\r\n\
          .\r\n",
    )
    .await;
    let (code, text) = c.reply().await;
    assert_eq!(code, 250, "{text}");
    assert_eq!(c.code("QUIT").await, 221);

    let list = messages(&sb).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["from"], "a@example.com");
    assert_eq!(
        list[0]["to"],
        serde_json::json!(["b@example.com", "c@example.com"])
    );
    assert_eq!(list[0]["subject"], "Café report");
    let m = message(&sb, &list[0]["id"]).await;
    assert_eq!(
        m["body"], "first line\n.one leading dot kept\n..two\n",
        "{m}"
    );
    let folded = m["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "X-Long")
        .unwrap();
    assert_eq!(folded["value"], "first part folded part");
}

#[tokio::test]
async fn rset_forgets_the_envelope() {
    let sb = mail_sandbox(None).await;
    let (mut c, _) = Client::connect(&sb).await;
    assert_eq!(c.code("HELO client.example").await, 250);
    assert_eq!(c.code("MAIL FROM:<first@example.com>").await, 250);
    assert_eq!(c.code("RCPT TO:<lost@example.com>").await, 250);
    assert_eq!(c.code("RSET").await, 250);
    // The sender and recipient are gone: RCPT and DATA are out of order again.
    assert_eq!(c.code("RCPT TO:<x@example.com>").await, 503);
    assert_eq!(c.code("DATA").await, 503);
    assert_eq!(c.code("MAIL FROM:<second@example.com>").await, 250);
    assert_eq!(c.code("RCPT TO:<kept@example.com>").await, 250);
    assert_eq!(c.code("DATA").await, 354);
    c.send_raw(b"Subject: after reset\r\n\r\nbody\r\n.\r\n")
        .await;
    assert_eq!(c.reply().await.0, 250);
    // A second message on the same connection starts from an empty envelope.
    assert_eq!(c.code("DATA").await, 503);
    assert_eq!(c.code("QUIT").await, 221);
    let list = messages(&sb).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["from"], "second@example.com");
    assert_eq!(list[0]["to"], serde_json::json!(["kept@example.com"]));
    assert_eq!(list[0]["subject"], "after reset");
}

#[tokio::test]
async fn a_message_over_the_size_cap_is_refused_with_552() {
    let sb = mail_sandbox(Some(1_000)).await;
    let (mut c, _) = Client::connect(&sb).await;
    let (_, ehlo) = c.cmd("EHLO client.example").await;
    assert!(ehlo.lines().any(|l| l == "SIZE 1000"), "{ehlo}");
    // Declared too large: refused at MAIL.
    assert_eq!(c.code("MAIL FROM:<a@example.com> SIZE=5000").await, 552);
    // Undeclared: read to its end, then refused; nothing is kept.
    assert_eq!(c.code("MAIL FROM:<a@example.com> SIZE=200").await, 250);
    assert_eq!(c.code("RCPT TO:<b@example.com>").await, 250);
    assert_eq!(c.code("DATA").await, 354);
    let mut big = b"Subject: big\r\n\r\n".to_vec();
    for _ in 0..40 {
        big.extend_from_slice(&[b'x'; 70]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b".\r\n");
    c.send_raw(&big).await;
    assert_eq!(c.reply().await.0, 552);
    // The connection goes on, with a fresh envelope; a small message fits.
    assert_eq!(c.code("RCPT TO:<b@example.com>").await, 503);
    assert_eq!(c.code("MAIL FROM:<a@example.com>").await, 250);
    assert_eq!(c.code("RCPT TO:<b@example.com>").await, 250);
    assert_eq!(c.code("DATA").await, 354);
    c.send_raw(b"Subject: small\r\n\r\nfits\r\n.\r\n").await;
    assert_eq!(c.reply().await.0, 250);
    let list = messages(&sb).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["subject"], "small");
}

#[tokio::test]
async fn unknown_commands_get_500_and_unoffered_ones_502() {
    let sb = mail_sandbox(None).await;
    let (mut c, _) = Client::connect(&sb).await;
    assert_eq!(c.code("EHLO client.example").await, 250);
    assert_eq!(c.code("FROBNICATE now").await, 500);
    assert_eq!(c.code("STARTTLS").await, 502);
    assert_eq!(c.code("VRFY someone").await, 502);
    let long = format!("NOOP {}", "x".repeat(10_000));
    assert_eq!(c.code(&long).await, 500);
    assert_eq!(c.code("HELP").await, 214);
    assert_eq!(c.code("NOOP").await, 250);
    assert_eq!(c.code("QUIT").await, 221);
    assert!(messages(&sb).await.is_empty());
}
