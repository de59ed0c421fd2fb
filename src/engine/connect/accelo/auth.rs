//! Accelo authentication: a service application's client-credentials grant
//! (`POST /oauth2/v0/token`, HTTP Basic with the client id and secret). Service apps get no
//! refresh token: a new access token is requested when the cached one is about to expire, or
//! when the API refuses it with 401.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::connect::http::{CachedToken, TokenSource, Transport};
use crate::connect::{ConnectError, Secret};

/// The lifetime of a service token when the answer does not say (Accelo: 30 days).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Client-credentials tokens, cached until shortly before they expire.
#[derive(Debug)]
pub(crate) struct ClientCredentials {
    client_id: String,
    client_secret: Secret,
    scope: String,
    expires_in: Option<u64>,
    margin: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    cached: Option<CachedToken>,
    fetched: u64,
}

impl ClientCredentials {
    pub(crate) fn new(
        client_id: String,
        client_secret: Secret,
        scope: String,
        expires_in: Option<u64>,
        margin: Duration,
    ) -> ClientCredentials {
        ClientCredentials {
            client_id,
            client_secret,
            scope,
            expires_in,
            margin,
            state: Mutex::new(State::default()),
        }
    }

    /// How many tokens were obtained so far.
    pub(crate) async fn fetched(&self) -> u64 {
        self.state.lock().await.fetched
    }
}

#[async_trait]
impl TokenSource for ClientCredentials {
    async fn token(&self, transport: &Transport) -> Result<Secret, ConnectError> {
        let mut state = self.state.lock().await;
        if let Some(c) = &state.cached
            && c.usable(Instant::now(), self.margin)
        {
            return Ok(c.token.clone());
        }
        let expires = self.expires_in.map(|s| s.to_string());
        let mut form = vec![("grant_type", "client_credentials")];
        if !self.scope.is_empty() {
            form.push(("scope", self.scope.as_str()));
        }
        if let Some(e) = &expires {
            form.push(("expires_in", e.as_str()));
        }
        let answer = transport
            .token_request(
                "/oauth2/v0/token",
                &form,
                Some((&self.client_id, &self.client_secret)),
            )
            .await?;
        state.fetched += 1;
        // `expires_in` is bounded (1 s to a year) by `CachedToken::new`.
        let cached = CachedToken::new(
            answer.access_token.clone(),
            answer.expires_in,
            DEFAULT_LIFETIME,
            Instant::now(),
        );
        tracing::debug!(
            expires_in_s = cached.lifetime.as_secs(),
            "accelo access token obtained"
        );
        state.cached = Some(cached);
        Ok(answer.access_token)
    }

    async fn refused(&self, token: &Secret) -> bool {
        let mut state = self.state.lock().await;
        if state.cached.as_ref().is_some_and(|c| &c.token == token) {
            state.cached = None;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::connect::http::{HeaderStyle, RateLimit, RetryPolicy};
    use tandem_core::model::System;

    /// A token endpoint on loopback that answers every request with `body`.
    async fn token_endpoint(body: &'static str) -> String {
        let app = axum::Router::new().route(
            "/oauth2/v0/token",
            axum::routing::post(
                move || async move { ([("content-type", "application/json")], body) },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    #[tokio::test]
    async fn hostile_expires_in_is_clamped_not_a_panic() {
        for body in [
            r#"{"access_token":"a","expires_in":18446744073709551615}"#,
            r#"{"access_token":"a","expires_in":"18446744073709551615"}"#,
            r#"{"access_token":"a","expires_in":1e308}"#,
            r#"{"access_token":"a","expires_in":0}"#,
        ] {
            let base = token_endpoint(body).await;
            let src = Arc::new(ClientCredentials::new(
                "client".into(),
                Secret::new("secret"),
                String::new(),
                None,
                Duration::from_secs(300),
            ));
            let t = Transport::new(
                System::Accelo,
                &base,
                Duration::from_secs(5),
                RetryPolicy::default(),
                RateLimit::ACCELO,
                RateLimit::ACCELO,
                src.clone(),
                HeaderStyle::Accelo,
            )
            .unwrap();
            assert_eq!(src.token(&t).await.unwrap().expose(), "a", "{body}");
            let state = src.state.lock().await;
            let c = state.cached.as_ref().unwrap();
            assert!(
                c.lifetime >= Duration::from_secs(1)
                    && c.lifetime <= crate::connect::http::MAX_TOKEN_LIFETIME,
                "{body}: {:?}",
                c.lifetime
            );
            assert_eq!(state.fetched, 1);
        }
    }
}
