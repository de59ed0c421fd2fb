//! Keeping secrets out of the sync log and of anything printed from it.
//!
//! Two layers: the exact values of secrets this process knows (registered with
//! [`register_secret`] by whoever reads them from the environment: tokens, client secrets,
//! webhook secrets, SMTP passwords, database passwords), and patterns that look like a secret
//! whatever its value (`Bearer …`, `access_token=…`, `"client_secret":"…"`, a password in a URL).
//! [`scrub`] applies both; [`scrub_registered`] only the first, for customer data where a
//! pattern could match an innocent value.

use std::borrow::Cow;
use std::sync::{LazyLock, RwLock};

use regex::Regex;

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not registered: replacing every `abc` in the log would destroy
/// it, and no real token is that short.
const MIN_SECRET_LEN: usize = 6;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let key = r"access_token|refresh_token|id_token|client_secret|api_?key|hapikey|password|passwd|secret|token";
    [
        // Authorization headers and the like (real tokens are long; "Bearer Holdings" is not one).
        (
            r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{16,}",
            "$1 [redacted]",
        ),
        // key=value in query strings, form bodies and messages.
        (&format!(r#"(?i)\b({key})=[^&\s"',;]+"#), "$1=[redacted]"),
        // "key": "value" in JSON bodies.
        (
            &format!(r#"(?i)"({key})"\s*:\s*"[^"]*""#),
            r#""$1":"[redacted]""#,
        ),
        // scheme://user:password@host
        (
            r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+):[^@\s/]+@",
            "$1:[redacted]@",
        ),
    ]
    .into_iter()
    .filter_map(|(re, rep)| Regex::new(re).ok().map(|re| (re, rep)))
    .collect()
});

/// Remembers a secret so that [`scrub`] removes it from everything written to the sync log.
/// Values shorter than six characters are ignored.
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = match SECRETS.write() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
        // Longest first, so that a secret containing another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Removes registered secrets from `text`.
pub fn scrub_registered(text: &str) -> Cow<'_, str> {
    let secrets = match SECRETS.read() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

/// Removes registered secrets and anything that looks like a credential from `text`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let mut out = scrub_registered(text);
    for (re, rep) in PATTERNS.iter() {
        if re.is_match(&out) {
            out = Cow::Owned(re.replace_all(&out, *rep).into_owned());
        }
    }
    out
}

/// `url` without its password, for messages (`postgres://tandem:s3cret@db/x` →
/// `postgres://tandem:[redacted]@db/x`).
pub fn url_without_password(url: &str) -> String {
    scrub(url).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_removed() {
        register_secret("pat-na1-0f6c1d2e-unit-test");
        register_secret("abc"); // too short: ignored
        let s = scrub("token pat-na1-0f6c1d2e-unit-test rejected; abc stays");
        assert_eq!(s, "token [redacted] rejected; abc stays");
    }

    #[test]
    fn credential_patterns_are_removed() {
        let cases = [
            (
                "401 for header Authorization: Bearer eyJhbGciOi.J9.abc",
                "401 for header Authorization: Bearer [redacted]",
            ),
            (
                "POST /oauth2/v0/token body grant_type=client_credentials&client_secret=sh-123456&scope=read",
                "POST /oauth2/v0/token body grant_type=client_credentials&client_secret=[redacted]&scope=read",
            ),
            (
                r#"response {"access_token": "a1b2c3d4e5", "expires_in": 3600}"#,
                r#"response {"access_token":"[redacted]", "expires_in": 3600}"#,
            ),
            (
                "cannot reach postgres://tandem:hunter22@db.internal:5432/sync",
                "cannot reach postgres://tandem:[redacted]@db.internal:5432/sync",
            ),
            (
                "GET /companies?hapikey=xyz123456",
                "GET /companies?hapikey=[redacted]",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub(input), expected, "input: {input}");
        }
    }

    #[test]
    fn ordinary_text_is_untouched() {
        for text in [
            "criteria not met: lifecyclestage is `subscriber`",
            "matched by domain `acme.com`",
            "https://acme.com/about",
            "Bearer Holdings",
        ] {
            assert!(matches!(scrub(text), Cow::Borrowed(_)), "{text}");
        }
    }
}
