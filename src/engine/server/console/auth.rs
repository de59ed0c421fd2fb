//! Who is signed in to the console and what they may do: password hashes (Argon2id), sessions
//! in an HttpOnly, SameSite=Strict cookie, the CSRF token every state-changing request carries,
//! the same-origin check, and the limit on failed sign-ins.
//!
//! Sessions live in this process's memory: a restart of `tandem serve` signs everyone out.
//! Passwords are never kept or logged; only their hashes are in tandem.yaml.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::HeaderMap;
use rand::RngCore;

use tandem_core::rules::config::{ConsoleUser, Role};

/// The session cookie's name.
pub const COOKIE: &str = "tandem_session";
/// The header a script sends the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field a page's form sends the CSRF token in.
pub const CSRF_FIELD: &str = "csrf";

/// Failed sign-ins allowed per name, and per client address, in [`LOGIN_WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// The window failed sign-ins are counted in.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Hashes a password for tandem.yaml (Argon2id, a random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("cannot make a salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches `hash`; a malformed hash matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A random token (hex), for session ids, CSRF tokens and one-time passwords.
pub fn token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The user's name.
    pub user: String,
    /// Their role.
    pub role: Role,
    /// The token state-changing requests must carry.
    pub csrf: String,
}

impl Session {
    /// Whether the user may run syncs and edit rules.
    pub fn can_operate(&self) -> bool {
        self.role == Role::Operator
    }
}

struct Held {
    session: Session,
    last_seen: Instant,
}

/// The sessions of this process, and the failed sign-ins.
pub struct Sessions {
    held: Mutex<HashMap<String, Held>>,
    failures: Mutex<Vec<(Instant, String, String)>>,
    ttl: Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Why a sign-in was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Wrong name or password (which one is not said).
    Wrong,
    /// Too many failures lately; try again after this long.
    Throttled(Duration),
}

impl Sessions {
    /// Sessions lasting `ttl` without activity.
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            held: Mutex::new(HashMap::new()),
            failures: Mutex::new(Vec::new()),
            ttl,
        }
    }

    fn throttled(&self, name: &str, client: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut f = lock(&self.failures);
        f.retain(|(at, _, _)| now.duration_since(*at) < LOGIN_WINDOW);
        let by_name: Vec<&Instant> = f
            .iter()
            .filter(|(_, n, _)| n == name)
            .map(|(a, _, _)| a)
            .collect();
        let by_client: Vec<&Instant> = f
            .iter()
            .filter(|(_, _, c)| c == client)
            .map(|(a, _, _)| a)
            .collect();
        let over = |v: &[&Instant]| {
            (v.len() >= MAX_FAILURES).then(|| {
                v.iter().min().map_or(LOGIN_WINDOW, |first| {
                    LOGIN_WINDOW.saturating_sub(now.duration_since(**first))
                })
            })
        };
        over(&by_name).or_else(|| over(&by_client))
    }

    /// Signs `name` in with `password` against `users`; `client` is the caller's address (for
    /// the failure limit). Returns the new session's id and the session.
    pub fn sign_in(
        &self,
        users: &[ConsoleUser],
        name: &str,
        password: &str,
        client: &str,
    ) -> Result<(String, Session), Refused> {
        let name = name.trim();
        if let Some(wait) = self.throttled(name, client) {
            return Err(Refused::Throttled(wait));
        }
        let user = users.iter().find(|u| u.name == name);
        // Verify against something even for an unknown name, so that timing tells nothing.
        let ok = match user {
            Some(u) => verify_password(&u.password_hash, password),
            None => {
                let _ = verify_password(DUMMY_HASH, password);
                false
            }
        };
        match (ok, user) {
            (true, Some(u)) => {
                let id = token(32);
                let session = Session {
                    user: u.name.clone(),
                    role: u.role,
                    csrf: token(24),
                };
                let mut held = lock(&self.held);
                let now = Instant::now();
                held.retain(|_, h| now.duration_since(h.last_seen) < self.ttl);
                held.insert(
                    id.clone(),
                    Held {
                        session: session.clone(),
                        last_seen: now,
                    },
                );
                Ok((id, session))
            }
            _ => {
                lock(&self.failures).push((Instant::now(), name.to_string(), client.to_string()));
                Err(Refused::Wrong)
            }
        }
    }

    /// The session of a cookie value, refreshed; `None` when unknown or expired. A user removed
    /// from tandem.yaml, or whose role changed, is signed out.
    pub fn get(&self, id: &str, users: &[ConsoleUser]) -> Option<Session> {
        let mut held = lock(&self.held);
        let now = Instant::now();
        let h = held.get_mut(id)?;
        let current = users.iter().find(|u| u.name == h.session.user);
        if now.duration_since(h.last_seen) >= self.ttl
            || current.is_none_or(|u| u.role != h.session.role)
        {
            held.remove(id);
            return None;
        }
        h.last_seen = now;
        Some(h.session.clone())
    }

    /// Ends a session.
    pub fn sign_out(&self, id: &str) {
        lock(&self.held).remove(id);
    }
}

/// A valid Argon2 hash of a random password, verified against for unknown names.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Zq7Q0l0D1m1oQh5j8g2cS0xvS0b4yqF8b0Cw2bqTmXo";

/// The session id in a request's cookies.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
}

/// Whether the request came over HTTPS (directly, or through a proxy that says so).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
        || headers
            .get("forwarded")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"))
}

/// The `Set-Cookie` value of a new session.
pub fn set_cookie(id: &str, secure: bool, max_age: Duration) -> String {
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Whether a state-changing request comes from the console's own pages: a browser's
/// `Sec-Fetch-Site` is not `cross-site`/`same-site`, and an `Origin` (or, without one, a
/// `Referer`) names the host the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let get = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    if matches!(get("sec-fetch-site"), Some("cross-site" | "same-site")) {
        return false;
    }
    let Some(host) = get("x-forwarded-host").or(get("host")) else {
        return false;
    };
    let host = host.split(',').next().unwrap_or(host).trim();
    let origin = get("origin").filter(|o| *o != "null").or(get("referer"));
    match origin {
        // Tools without a browser (curl, scripts) send neither: the CSRF token still applies.
        None => !headers.contains_key("origin"),
        Some(o) => url::Url::parse(o).ok().is_some_and(|u| {
            let authority = match (u.host_str(), u.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => return false,
            };
            authority.eq_ignore_ascii_case(host)
        }),
    }
}

/// The caller's address for the sign-in limit: the first `X-Forwarded-For` hop, else `peer`.
pub fn client_of(headers: &HeaderMap, peer: Option<std::net::SocketAddr>) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| peer.map(|p| p.ip().to_string()))
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, role: Role, pw: &str) -> ConsoleUser {
        ConsoleUser {
            name: name.into(),
            role,
            password_hash: hash_password(pw).expect("hash"),
        }
    }

    #[test]
    fn hashes_verify_and_differ() {
        let a = hash_password("correct horse").expect("hash");
        let b = hash_password("correct horse").expect("hash");
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "salted");
        assert!(verify_password(&a, "correct horse"));
        assert!(!verify_password(&a, "wrong"));
        assert!(!verify_password("not a hash", "x"));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn sign_in_out_and_limits() {
        let users = vec![user("ana", Role::Operator, "pw1")];
        let s = Sessions::new(Duration::from_secs(60));
        let (id, session) = s
            .sign_in(&users, "ana", "pw1", "1.2.3.4")
            .expect("signed in");
        assert!(session.can_operate());
        assert_eq!(s.get(&id, &users).map(|x| x.user), Some("ana".into()));
        s.sign_out(&id);
        assert_eq!(s.get(&id, &users), None);
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                s.sign_in(&users, "ana", "bad", "5.6.7.8"),
                Err(Refused::Wrong)
            );
        }
        assert!(matches!(
            s.sign_in(&users, "ana", "pw1", "9.9.9.9"),
            Err(Refused::Throttled(_))
        ));
        // The role changed in tandem.yaml: signed out.
        let s = Sessions::new(Duration::from_secs(60));
        let (id, _) = s.sign_in(&users, "ana", "pw1", "x").expect("in");
        let demoted = vec![ConsoleUser {
            role: Role::Viewer,
            ..users[0].clone()
        }];
        assert_eq!(s.get(&id, &demoted), None);
    }

    #[test]
    fn origin_checks() {
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    v.parse().expect("value"),
                );
            }
            m
        };
        assert!(same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:9999")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "a:1"),
            ("origin", "http://a:1"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(
            same_origin(&h(&[("host", "a:1")])),
            "scripts send no origin"
        );
        assert!(!same_origin(&h(&[("host", "a:1"), ("origin", "null")])));
        assert_eq!(
            cookie_value(&h(&[("cookie", "x=1; tandem_session=abc")])),
            Some("abc".into())
        );
    }
}
