//! Webhook request authentication: HubSpot's `X-HubSpot-Signature-v3` (and, when configured, the
//! legacy v1), and Accelo's `X-Hub-Signature`.
//!
//! Pure functions over the request's parts; the receiver decides what to do with the verdict.
//! Comparisons are constant-time (`Mac::verify_slice` / a constant-time byte compare), and no
//! error message ever contains the secret or the expected signature.

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

/// How old a v3 request may be before it is refused (HubSpot: 5 minutes).
pub const MAX_AGE_MS: i64 = 5 * 60 * 1000;

/// Why a webhook request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A required header is absent.
    #[error("missing `{0}` header")]
    MissingHeader(&'static str),
    /// The timestamp header is not a number of milliseconds.
    #[error("`X-HubSpot-Request-Timestamp` is not a millisecond timestamp")]
    BadTimestamp,
    /// The request is older than [`MAX_AGE_MS`] (or from the future by more than that).
    #[error("request timestamp is {age_ms} ms away from now (more than 5 minutes)")]
    Stale {
        /// Distance between the timestamp and now.
        age_ms: i64,
    },
    /// The signature header does not decode.
    #[error("signature is not valid base64/hex")]
    Malformed,
    /// The signature does not match the request.
    #[error("signature does not match the request")]
    Mismatch,
}

/// HubSpot's v3 rule for the signed URI: these percent-encoded characters are decoded before
/// signing; everything else (including the `?` that starts the query) is kept as sent.
pub fn normalize_uri_v3(uri: &str) -> String {
    const DECODE: [(&str, char); 12] = [
        ("%3A", ':'),
        ("%2F", '/'),
        ("%3F", '?'),
        ("%40", '@'),
        ("%21", '!'),
        ("%24", '$'),
        ("%27", '\''),
        ("%28", '('),
        ("%29", ')'),
        ("%2A", '*'),
        ("%2C", ','),
        ("%3B", ';'),
    ];
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let decoded = tail.get(..3).and_then(|code| {
            DECODE
                .iter()
                .find(|(enc, _)| enc.eq_ignore_ascii_case(code))
                .map(|(_, c)| *c)
        });
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[3..];
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The v3 signature of a request: `base64(hmac_sha256(secret, method + uri + body + timestamp))`.
pub fn sign_v3(secret: &[u8], method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    let mut mac = mac_for(secret);
    mac.update(method.as_bytes());
    mac.update(normalize_uri_v3(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Verifies a v3-signed request. `uri` is the full URL HubSpot called (scheme, host, path,
/// query); `now_ms` is the receiver's clock.
pub fn verify_v3(
    secret: &[u8],
    method: &str,
    uri: &str,
    body: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    now_ms: i64,
) -> Result<(), SignatureError> {
    let timestamp =
        timestamp.ok_or(SignatureError::MissingHeader("X-HubSpot-Request-Timestamp"))?;
    let signature = signature.ok_or(SignatureError::MissingHeader("X-HubSpot-Signature-v3"))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let age_ms = now_ms.saturating_sub(ts);
    if age_ms.abs() > MAX_AGE_MS {
        return Err(SignatureError::Stale { age_ms });
    }
    let given = base64::engine::general_purpose::STANDARD
        .decode(signature.trim())
        .map_err(|_| SignatureError::Malformed)?;
    let mut mac = mac_for(secret);
    mac.update(method.as_bytes());
    mac.update(normalize_uri_v3(uri).as_bytes());
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// The v1 signature: `hex(sha256(secret + body))`.
pub fn sign_v1(secret: &[u8], body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(secret);
    h.update(body);
    hex::encode(h.finalize())
}

/// Verifies a v1 signature (`X-HubSpot-Signature` with `X-HubSpot-Signature-Version: v1`).
/// v1 has no timestamp, so it cannot refuse replays: the receiver accepts it only when configured.
pub fn verify_v1(
    secret: &[u8],
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::MissingHeader("X-HubSpot-Signature"))?;
    let given = hex::decode(signature.trim()).map_err(|_| SignatureError::Malformed)?;
    let mut h = Sha256::new();
    h.update(secret);
    h.update(body);
    if constant_time_eq(&h.finalize(), &given) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Verifies Accelo's `X-Hub-Signature`: an HMAC-SHA256 hex digest of the payload, optionally
/// prefixed `sha256=` (the prefix format is undocumented; both forms are accepted).
pub fn verify_accelo(
    secret: &[u8],
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), SignatureError> {
    let signature = signature.ok_or(SignatureError::MissingHeader("X-Hub-Signature"))?;
    let hex_part = signature.trim();
    let hex_part = hex_part.strip_prefix("sha256=").unwrap_or(hex_part);
    let given = hex::decode(hex_part).map_err(|_| SignatureError::Malformed)?;
    let mut mac = mac_for(secret);
    mac.update(body);
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)
}

/// Accelo-style signature of a payload (`sha256=<hex>`), for tests and the sandbox.
pub fn sign_accelo(secret: &[u8], body: &[u8]) -> String {
    let mut mac = mac_for(secret);
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[allow(
    clippy::expect_used,
    reason = "HMAC accepts keys of every length: `new_from_slice` cannot fail"
)]
fn mac_for(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(secret).expect("HMAC-SHA256 accepts keys of every length")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";

    #[test]
    fn v1_matches_hubspot_documented_vector() {
        let body = br#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
        let expected = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de";
        assert_eq!(sign_v1(SECRET, body), expected);
        assert_eq!(verify_v1(SECRET, body, Some(expected)), Ok(()));
        assert_eq!(
            verify_v1(b"other", body, Some(expected)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn v3_round_trip_and_refusals() {
        let now = 1_700_000_000_000_i64;
        let ts = now.to_string();
        let uri = "https://tandem.example.com/webhooks/hubspot";
        let body = br#"[{"objectId":1}]"#;
        let sig = sign_v3(b"s3cret", "POST", uri, body, &ts);
        assert_eq!(
            verify_v3(b"s3cret", "POST", uri, body, Some(&ts), Some(&sig), now),
            Ok(())
        );
        // Tampered body, wrong secret, wrong method, wrong URI.
        assert_eq!(
            verify_v3(b"s3cret", "POST", uri, b"[]", Some(&ts), Some(&sig), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_v3(b"other", "POST", uri, body, Some(&ts), Some(&sig), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_v3(b"s3cret", "PUT", uri, body, Some(&ts), Some(&sig), now),
            Err(SignatureError::Mismatch)
        );
        // Stale: just over five minutes old.
        let old = (now - MAX_AGE_MS - 1).to_string();
        let old_sig = sign_v3(b"s3cret", "POST", uri, body, &old);
        assert!(matches!(
            verify_v3(
                b"s3cret",
                "POST",
                uri,
                body,
                Some(&old),
                Some(&old_sig),
                now
            ),
            Err(SignatureError::Stale { .. })
        ));
        // Exactly five minutes is still accepted.
        let edge = (now - MAX_AGE_MS).to_string();
        let edge_sig = sign_v3(b"s3cret", "POST", uri, body, &edge);
        assert_eq!(
            verify_v3(
                b"s3cret",
                "POST",
                uri,
                body,
                Some(&edge),
                Some(&edge_sig),
                now
            ),
            Ok(())
        );
        assert_eq!(
            verify_v3(b"s3cret", "POST", uri, body, None, Some(&sig), now),
            Err(SignatureError::MissingHeader("X-HubSpot-Request-Timestamp"))
        );
        assert_eq!(
            verify_v3(b"s3cret", "POST", uri, body, Some(&ts), None, now),
            Err(SignatureError::MissingHeader("X-HubSpot-Signature-v3"))
        );
        assert_eq!(
            verify_v3(b"s3cret", "POST", uri, body, Some("soon"), Some(&sig), now),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify_v3(b"s3cret", "POST", uri, body, Some(&ts), Some("%%%"), now),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn v3_decodes_listed_escapes_only() {
        assert_eq!(
            normalize_uri_v3("https://x.test/hook?a=%3A%2f%40%21%24%27%28%29%2A%2C%3B%3F&b=%20%25"),
            "https://x.test/hook?a=:/@!$'()*,;?&b=%20%25"
        );
        assert_eq!(normalize_uri_v3("trailing%"), "trailing%");
        assert_eq!(normalize_uri_v3("%2"), "%2");
        // A URI signed in its encoded form verifies against the decoded form and vice versa.
        let ts = "1700000000000";
        let sig = sign_v3(b"k", "POST", "https://x.test/h?u=a%40b.c", b"", ts);
        assert_eq!(
            verify_v3(
                b"k",
                "POST",
                "https://x.test/h?u=a@b.c",
                b"",
                Some(ts),
                Some(&sig),
                1_700_000_000_000
            ),
            Ok(())
        );
    }

    #[test]
    fn accelo_signature_with_and_without_prefix() {
        let sig = sign_accelo(b"k", b"{\"id\":\"1\"}");
        assert_eq!(verify_accelo(b"k", b"{\"id\":\"1\"}", Some(&sig)), Ok(()));
        let bare = sig.trim_start_matches("sha256=");
        assert_eq!(verify_accelo(b"k", b"{\"id\":\"1\"}", Some(bare)), Ok(()));
        assert_eq!(
            verify_accelo(b"k", b"{\"id\":\"2\"}", Some(&sig)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_accelo(b"k", b"x", None),
            Err(SignatureError::MissingHeader("X-Hub-Signature"))
        );
    }

    #[test]
    fn errors_never_contain_secrets() {
        let err =
            verify_v3(b"topsecret", "POST", "u", b"b", Some("1"), Some("AAAA"), 1).unwrap_err();
        assert!(!err.to_string().contains("topsecret"));
    }
}
