//! Checking `tandem.yaml`: connections, store, notifications, server and sync settings, and
//! that secrets are named by environment variable, never pasted.

use super::file::load;
use crate::rules::config::Config;
use crate::rules::diag::{Code, Diagnostic, Report};
use crate::rules::paths::Source;
use crate::rules::schema::FileKind;

/// `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn check_config(src: &Source, report: &mut Report) -> Option<Config> {
    let state = load(src, FileKind::Config, report)?;
    let config: Config = serde_json::from_value(state.value.clone()).ok()?;
    let name = src.name.as_str();
    let push = |report: &mut Report, ptr: &str, msg: String, help: Option<&str>| {
        let mut d = Diagnostic::new(Code::InvalidConfig, name, state.val(ptr), msg);
        if let Some(h) = help {
            d = d.help(h);
        }
        report.push(d);
    };
    // HubSpot auth: exactly one of token_env / oauth.
    match (&config.hubspot.token_env, &config.hubspot.oauth) {
        (Some(_), Some(_)) => push(
            report,
            "/hubspot/oauth",
            "set either `token_env` or `oauth`, not both".into(),
            Some("`token_env` is for a private app, `oauth` for a public app"),
        ),
        (None, None) => push(
            report,
            "/hubspot",
            "HubSpot authentication is not configured".into(),
            Some("set `hubspot.token_env` (private app) or `hubspot.oauth`"),
        ),
        _ => {}
    }
    for (ptr, url, what) in [
        ("/hubspot/url", &config.hubspot.url, "hubspot.url"),
        ("/accelo/url", &config.accelo.url, "accelo.url"),
    ] {
        let ok = url::Url::parse(url)
            .map(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .unwrap_or(false);
        if !ok {
            push(
                report,
                ptr,
                format!("`{what}` must be an http(s) URL, found `{url}`"),
                None,
            );
        }
    }
    if let Some(url) = &config.server.public_url {
        let ok = url::Url::parse(url)
            .map(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
            })
            .unwrap_or(false);
        if !ok {
            push(
                report,
                "/server/public_url",
                format!(
                    "`server.public_url` must be an http(s) base URL without query, found `{url}`"
                ),
                Some("the scheme and host HubSpot calls, e.g. `https://sync.example.com`"),
            );
        }
    }
    let store = &config.store.url;
    if store.trim().is_empty() {
        push(report, "/store/url", "`store.url` is empty".into(), None);
    } else if (store.starts_with("postgres://") || store.starts_with("postgresql://"))
        && url::Url::parse(store).is_err()
    {
        push(
            report,
            "/store/url",
            "`store.url` is not a valid PostgreSQL URL".into(),
            None,
        );
    }
    if !valid_host_port(&config.server.listen) {
        push(
            report,
            "/server/listen",
            format!(
                "`server.listen` must be `address:port`, found `{}`",
                config.server.listen
            ),
            None,
        );
    }
    if let Some(email) = &config.notify.email {
        if !valid_host_port(&email.server) {
            push(
                report,
                "/notify/email/server",
                format!(
                    "`notify.email.server` must be `host:port`, found `{}`",
                    email.server
                ),
                None,
            );
        }
        if crate::expr::helpers::email(&email.from).is_none() {
            push(
                report,
                "/notify/email/from",
                format!("`{}` is not an email address", email.from),
                None,
            );
        }
        if email.to.is_empty() {
            push(
                report,
                "/notify/email/to",
                "`notify.email.to` lists no recipient".into(),
                None,
            );
        }
        for (i, to) in email.to.iter().enumerate() {
            if crate::expr::helpers::email(to).is_none() {
                push(
                    report,
                    &format!("/notify/email/to/{i}"),
                    format!("`{to}` is not an email address"),
                    None,
                );
            }
        }
    }
    if config.sync.poll_interval_seconds == 0 {
        push(
            report,
            "/sync/poll_interval_seconds",
            "`sync.poll_interval_seconds` must be at least 1".into(),
            None,
        );
    }
    if !(1..=64).contains(&config.sync.accelo_concurrency) {
        push(
            report,
            "/sync/accelo_concurrency",
            "`sync.accelo_concurrency` must be between 1 and 64".into(),
            None,
        );
    }
    // Environment-variable names. The value is never echoed: it may be a pasted secret.
    let mut env_names: Vec<(String, &str)> = Vec::new();
    if let Some(t) = &config.hubspot.token_env {
        env_names.push(("/hubspot/token_env".into(), t));
    }
    if let Some(o) = &config.hubspot.oauth {
        env_names.push((
            "/hubspot/oauth/client_secret_env".into(),
            &o.client_secret_env,
        ));
        env_names.push((
            "/hubspot/oauth/refresh_token_env".into(),
            &o.refresh_token_env,
        ));
    }
    env_names.push((
        "/accelo/client_secret_env".into(),
        &config.accelo.client_secret_env,
    ));
    if let Some(w) = &config.server.webhook_secret_env {
        env_names.push(("/server/webhook_secret_env".into(), w));
    }
    if let Some(w) = &config.server.accelo_webhook_secret_env {
        env_names.push(("/server/accelo_webhook_secret_env".into(), w));
    }
    if let Some(e) = &config.notify.email {
        if let Some(u) = &e.username_env {
            env_names.push(("/notify/email/username_env".into(), u));
        }
        if let Some(p) = &e.password_env {
            env_names.push(("/notify/email/password_env".into(), p));
        }
    }
    for (ptr, v) in env_names {
        // A key that is not in the file is the schema's to report (E005), not a pasted value.
        if state.index.get(&ptr).is_none() {
            continue;
        }
        if !is_env_name(v) {
            let key = ptr.rsplit('/').next().unwrap_or("");
            // The value may be the secret itself: mask it in every rendering, and quote no
            // snippet for this diagnostic.
            let span = state.val(&ptr);
            report.redact(name, state.index.value_span(&ptr));
            report.push(
                Diagnostic::new(
                    Code::InvalidConfig,
                    name,
                    span,
                    format!(
                        "`{key}` must name an environment variable (letters, digits and `_`), \
                         not hold a value"
                    ),
                )
                .without_snippet()
                .help("put the secret in the environment and write the variable's name here"),
            );
        }
    }
    Some(config)
}

fn valid_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    }
}
