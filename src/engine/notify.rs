//! Email when a push completes (B2): the summary of a bulk Accelo → HubSpot push — counts,
//! failures, job id, duration — sent through SMTP (lettre over rustls), and the decision the
//! executor calls when a job ends ([`push_completed`]).
//!
//! Only a manual bulk push (`tandem push`, job kind `push`) sends an email. Automatic syncs never
//! do (B13), nor do pulls or push-one runs. When no SMTP server is configured nothing is sent and
//! the sync log says so; when sending fails the run is not failed, the log says why.
//! Email text passes through [`redact::scrub`] (errors quoted in it may carry credentials).

use std::fmt::{self, Write as _};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::store::{
    Counts, JobId, JobKind, JobState, LogBody, LogQuery, NewLogEntry, Notice, NoticeLevel, Outcome,
    Store, StoreError, redact,
};
use tandem_core::model::Direction;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on the same host or network only). Default port 25.
    None,
    /// Plain text upgraded with STARTTLS, which is required: a server that does not offer it
    /// gets nothing. Default port 587.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS). Default port 465.
    Tls,
}

impl SmtpTls {
    fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

impl FromStr for SmtpTls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::Starttls),
            "tls" => Ok(SmtpTls::Tls),
            other => Err(format!(
                "unknown smtp tls mode `{other}` (expected `none`, `starttls` or `tls`)"
            )),
        }
    }
}

/// SMTP login, resolved by the caller from the environment variables `tandem.yaml` names.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpCredentials {
    /// The user name.
    pub username: String,
    /// The password (never printed: `Debug` hides it).
    pub password: String,
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// Where and how to send email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    /// `host` or `host:port` (the port defaults by `tls`: 25, 587, 465).
    pub server: String,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// The sender, `address` or `Name <address>`.
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// Login, when the server wants one.
    pub credentials: Option<SmtpCredentials>,
    /// A PEM file of extra certificate authorities to trust (relays with a private CA).
    pub extra_ca: Option<PathBuf>,
    /// How long to wait for the server at each step.
    pub timeout: Duration,
}

impl SmtpSettings {
    /// Settings with no login, no extra CA and a 30-second timeout.
    pub fn new(
        server: impl Into<String>,
        tls: SmtpTls,
        from: impl Into<String>,
        to: Vec<String>,
    ) -> SmtpSettings {
        SmtpSettings {
            server: server.into(),
            tls,
            from: from.into(),
            to,
            credentials: None,
            extra_ca: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// `(host, port)` of [`SmtpSettings::server`].
    fn host_port(&self) -> Result<(String, u16), NotifyError> {
        let bad = || NotifyError::Server(self.server.clone());
        let server = self.server.trim();
        if server.is_empty() {
            return Err(bad());
        }
        match server.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => {
                let port = port.parse::<u16>().map_err(|_| bad())?;
                if host.is_empty() || port == 0 {
                    return Err(bad());
                }
                Ok((host.to_string(), port))
            }
            Some(_) => Err(bad()),
            None => Ok((server.to_string(), self.tls.default_port())),
        }
    }
}

/// Why an email could not be sent.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum NotifyError {
    /// An address in the settings is not an email address.
    #[error("`{value}` in `{field}` is not an email address: {reason}")]
    #[diagnostic(code(tandem::notify::address))]
    Address {
        /// `from` or `to`.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The server is not `host` or `host:port`.
    #[error("the smtp server `{0}` is not HOST or HOST:PORT")]
    #[diagnostic(code(tandem::notify::server))]
    Server(String),
    /// No recipient.
    #[error("the email has no recipient: `to` is empty")]
    #[diagnostic(code(tandem::notify::no_recipient))]
    NoRecipient,
    /// The extra CA file could not be used.
    #[error("cannot use the certificate authority file `{path}`: {reason}")]
    #[diagnostic(code(tandem::notify::ca))]
    Ca {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The server could not be reached or refused the email.
    #[error("the smtp server `{server}` did not take the email: {reason}")]
    #[diagnostic(code(tandem::notify::send))]
    Send {
        /// The server.
        server: String,
        /// What went wrong (secrets removed).
        reason: String,
    },
}

/// What a push did, for its email.
#[derive(Debug, Clone, PartialEq)]
pub struct PushSummary {
    /// The job.
    pub job: JobId,
    /// The job's kind (only `push` sends email).
    pub job_kind: JobKind,
    /// What the run covered when not everything (e.g. `accelo:company:12`).
    pub subject: Option<String>,
    /// How the run ended.
    pub state: JobState,
    /// Records per outcome.
    pub counts: Counts,
    /// The failed records.
    pub failures: Vec<Failure>,
    /// Wall time of the run.
    pub duration: Duration,
    /// When the run ended.
    pub finished_at: DateTime<Utc>,
    /// Why the run stopped, when it failed.
    pub error: Option<String>,
}

/// One failed record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `system:object:id` of the record read.
    pub record: String,
    /// Its error.
    pub error: String,
}

impl PushSummary {
    /// The summary of job `job` as its sync-log entries tell it: counts and duration from its
    /// `run_finished` entry when there is one (otherwise counted from its record entries and
    /// the job's times), failures from its record entries.
    pub async fn from_log(store: &dyn Store, job: JobId) -> Result<PushSummary, StoreError> {
        let stored = store.job(job).await?.ok_or(StoreError::NoSuchJob(job))?;
        let entries = store
            .log(&LogQuery {
                job: Some(job),
                ..LogQuery::default()
            })
            .await?;
        let mut finished = None;
        let mut subject = None;
        // Each record's last entry: a record that failed in an interrupted attempt and went
        // through in the next is not a failure.
        let mut last: Vec<crate::store::RecordEntry> = Vec::new();
        let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for e in entries {
            match e.body {
                LogBody::Record(r) => {
                    let id = r.source.id.as_deref().unwrap_or("?");
                    let key = format!("{}:{}:{id}", r.source.system, r.object);
                    match at.get(&key) {
                        Some(&i) => last[i] = r,
                        None => {
                            at.insert(key, last.len());
                            last.push(r);
                        }
                    }
                }
                LogBody::RunStarted(s) => subject = subject.or(s.subject),
                LogBody::RunFinished(f) => finished = Some((f, e.at)),
                _ => {}
            }
        }
        let mut counts = Counts::default();
        let mut failures = Vec::new();
        for r in last {
            counts.add(r.outcome);
            if r.outcome == Outcome::Failed {
                let id = r.source.id.as_deref().unwrap_or("?");
                failures.push(Failure {
                    record: format!("{}:{}:{id}", r.source.system, r.object),
                    error: r.error.unwrap_or_else(|| r.reason.clone()),
                });
            }
        }
        let now = Utc::now();
        let summary = match finished {
            Some((f, at)) => PushSummary {
                job,
                job_kind: stored.kind,
                subject: f.subject.or(subject),
                state: f.state,
                counts: f.counts,
                failures,
                duration: Duration::from_millis(f.duration_ms),
                finished_at: at,
                error: f.error.or(stored.error),
            },
            None => {
                let end = stored.finished_at.unwrap_or(now);
                let start = stored.started_at.unwrap_or(stored.created_at);
                PushSummary {
                    job,
                    job_kind: stored.kind,
                    subject,
                    state: stored.state,
                    counts,
                    failures,
                    duration: (end - start).to_std().unwrap_or_default(),
                    finished_at: end,
                    error: stored.error,
                }
            }
        };
        Ok(summary)
    }
}

/// An email's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub body: String,
}

/// How many failures an email lists (the rest are counted, and in the log).
const MAX_LISTED_FAILURES: usize = 25;

/// `2h 05m`, `3m 07s`, `12.4s`, `850ms`.
pub fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{}h {:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// The email for `summary`.
pub fn render(summary: &PushSummary) -> Email {
    let c = &summary.counts;
    let what = match (&summary.subject, summary.job_kind) {
        (Some(subject), _) => format!("push of {subject}"),
        (None, JobKind::Push) => "push".to_string(),
        (None, kind) => format!("{kind} run"),
    };
    let job = summary.job;
    let subject = match summary.state {
        JobState::Failed => format!("Tandem {what} stopped with an error (job {job})"),
        JobState::Cancelled => format!("Tandem {what} was cancelled (job {job})"),
        _ => format!(
            "Tandem {what} finished: {} created, {} updated, {} failed (job {job})",
            c.created, c.updated, c.failed
        ),
    };
    let direction = Direction::Push;
    let mut body = String::new();
    let ended = match summary.state {
        JobState::Failed => "stopped with an error",
        JobState::Cancelled => "was cancelled",
        _ => "finished",
    };
    let _ = writeln!(
        body,
        "The {what} from {} to {} (job {job}) {ended} at {} after {}.",
        pretty(direction.source()),
        pretty(direction.target()),
        summary.finished_at.format("%Y-%m-%d %H:%M:%S UTC"),
        human_duration(summary.duration),
    );
    if let Some(error) = &summary.error {
        let _ = writeln!(body, "\nError: {error}");
    }
    let _ = writeln!(body);
    for (label, n) in [
        ("created", c.created),
        ("updated", c.updated),
        ("linked", c.linked),
        ("unchanged", c.noop),
        ("skipped", c.skipped),
        ("failed", c.failed),
    ] {
        let _ = writeln!(body, "  {label:<10} {n:>8}");
    }
    if !summary.failures.is_empty() {
        let _ = writeln!(body, "\nFailed records:");
        for f in summary.failures.iter().take(MAX_LISTED_FAILURES) {
            let _ = writeln!(body, "  - {}: {}", f.record, f.error);
        }
        let more = summary.failures.len().saturating_sub(MAX_LISTED_FAILURES);
        if more > 0 {
            let _ = writeln!(body, "  … and {more} more");
        }
    }
    let _ = writeln!(
        body,
        "\nEvery record, field by field: tandem log --job {job}"
    );
    Email {
        subject: redact::scrub(&subject).into_owned(),
        body: redact::scrub(&body).into_owned(),
    }
}

fn pretty(system: tandem_core::model::System) -> &'static str {
    match system {
        tandem_core::model::System::HubSpot => "HubSpot",
        tandem_core::model::System::Accelo => "Accelo",
    }
}

fn mailbox(field: &'static str, value: &str) -> Result<Mailbox, NotifyError> {
    value
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| NotifyError::Address {
            field,
            value: value.to_string(),
            reason: e.to_string(),
        })
}

/// Sends `email` as configured.
pub async fn send(settings: &SmtpSettings, email: &Email) -> Result<(), NotifyError> {
    let (host, port) = settings.host_port()?;
    if settings.to.is_empty() {
        return Err(NotifyError::NoRecipient);
    }
    let mut message = Message::builder()
        .from(mailbox("from", &settings.from)?)
        .subject(email.subject.clone())
        .header(ContentType::TEXT_PLAIN);
    for to in &settings.to {
        message = message.to(mailbox("to", to)?);
    }
    let server = format!("{host}:{port}");
    let send_error = |reason: String| NotifyError::Send {
        server: server.clone(),
        reason: redact::scrub(&reason).into_owned(),
    };
    let message = message
        .body(email.body.clone())
        .map_err(|e| send_error(e.to_string()))?;

    let tls = match settings.tls {
        SmtpTls::None => Tls::None,
        mode => {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(path) = &settings.extra_ca {
                let ca_error = |reason: String| NotifyError::Ca {
                    path: path.display().to_string(),
                    reason,
                };
                let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build().map_err(|e| send_error(e.to_string()))?;
            if mode == SmtpTls::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
        .port(port)
        .tls(tls)
        .timeout(Some(settings.timeout));
    if let Some(c) = &settings.credentials {
        redact::register_secret(&c.password);
        transport = transport.credentials(Credentials::new(c.username.clone(), c.password.clone()));
    }
    let transport = transport.build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| send_error(describe_smtp_error(&e)))
}

/// lettre's error with its source chain (the cause is often where the useful words are).
fn describe_smtp_error(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Whether a finished job of `kind` sends the push-completion email: only a manual bulk push.
pub fn sends_email(kind: JobKind) -> bool {
    kind == JobKind::Push
}

/// What [`push_completed`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notified {
    /// The job is not a bulk push (pulls, push-one runs, automatic syncs): no email, no notice.
    NotApplicable,
    /// No SMTP server is configured: no email; the log says so.
    NotConfigured,
    /// Sent to these recipients; the log says so.
    Sent(Vec<String>),
    /// Sending failed with this error; the log says so. The job is not failed for it.
    Failed(String),
}

/// The decision the executor calls when a job has ended: emails the summary of a bulk push when
/// email is configured, and writes a `notice` to the job's sync log saying what happened (sent,
/// not configured, or why it failed). Fails only when the notice cannot be written.
pub async fn push_completed(
    store: &dyn Store,
    email: Option<&SmtpSettings>,
    summary: &PushSummary,
) -> Result<Notified, StoreError> {
    if !sends_email(summary.job_kind) {
        return Ok(Notified::NotApplicable);
    }
    let job = summary.job;
    let (outcome, level, message) = match email {
        None => (
            Notified::NotConfigured,
            NoticeLevel::Info,
            format!(
                "no email sent for push job {job}: email is not configured \
                 (`notify.email` in tandem.yaml)"
            ),
        ),
        Some(settings) => match send(settings, &render(summary)).await {
            Ok(()) => (
                Notified::Sent(settings.to.clone()),
                NoticeLevel::Info,
                format!(
                    "push summary for job {job} emailed to {}",
                    settings.to.join(", ")
                ),
            ),
            Err(e) => {
                let text = e.to_string();
                (
                    Notified::Failed(text.clone()),
                    NoticeLevel::Warn,
                    format!("the push summary for job {job} could not be emailed: {text}"),
                )
            }
        },
    };
    store
        .append_log(&NewLogEntry {
            job: Some(job),
            body: LogBody::Notice(Notice { level, message }),
        })
        .await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_parse_with_default_ports() {
        let s = |server: &str, tls| SmtpSettings::new(server, tls, "a@b.c", vec![]).host_port();
        assert_eq!(
            s("mail.example.com", SmtpTls::Starttls).unwrap(),
            ("mail.example.com".into(), 587)
        );
        assert_eq!(
            s("mail.example.com", SmtpTls::Tls).unwrap(),
            ("mail.example.com".into(), 465)
        );
        assert_eq!(s("relay", SmtpTls::None).unwrap(), ("relay".into(), 25));
        assert_eq!(
            s("127.0.0.1:2525", SmtpTls::None).unwrap(),
            ("127.0.0.1".into(), 2525)
        );
        for bad in [
            "",
            ":25",
            "host:",
            "host:port",
            "host:0",
            "a:b:c",
            "host:70000",
        ] {
            let err = s(bad, SmtpTls::None).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("the smtp server `{bad}` is not HOST or HOST:PORT")
            );
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(human_duration(Duration::from_millis(12_400)), "12.4s");
        assert_eq!(human_duration(Duration::from_secs(187)), "3m 07s");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2h 05m");
    }

    #[test]
    fn credentials_never_print_the_password() {
        let c = SmtpCredentials {
            username: "tandem".into(),
            password: "hunter2-smtp".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2-smtp"));
    }

    #[test]
    fn tls_modes_parse() {
        assert_eq!("STARTTLS".parse::<SmtpTls>().unwrap(), SmtpTls::Starttls);
        assert_eq!(
            "ssl".parse::<SmtpTls>().unwrap_err(),
            "unknown smtp tls mode `ssl` (expected `none`, `starttls` or `tls`)"
        );
    }
}
