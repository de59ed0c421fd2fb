//! HubSpot authentication: a private-app token as it is, or OAuth 2 with a refresh token — the
//! access token (30 minutes) is refreshed ahead of its `expires_in`, never because of a 401
//! alone (HubSpot says a 401 is not a valid signal; one forced refresh is still tried so that a
//! revoked access token recovers).

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::connect::http::{CachedToken, TokenSource, Transport};
use crate::connect::{ConnectError, Secret};

/// The access-token lifetime when the answer does not say (HubSpot: 30 minutes).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(1800);

/// OAuth refresh-token grant against `POST /oauth/v1/token`.
#[derive(Debug)]
pub(crate) struct OAuthToken {
    client_id: String,
    client_secret: Secret,
    state: Mutex<State>,
    margin: Duration,
}

#[derive(Debug)]
struct State {
    refresh_token: Secret,
    cached: Option<CachedToken>,
    refreshes: u64,
}

impl OAuthToken {
    pub(crate) fn new(
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        margin: Duration,
    ) -> OAuthToken {
        OAuthToken {
            client_id,
            client_secret,
            state: Mutex::new(State {
                refresh_token,
                cached: None,
                refreshes: 0,
            }),
            margin,
        }
    }

    /// How many times an access token was obtained.
    pub(crate) async fn refreshes(&self) -> u64 {
        self.state.lock().await.refreshes
    }

    async fn refresh(
        &self,
        transport: &Transport,
        state: &mut State,
    ) -> Result<Secret, ConnectError> {
        let refresh = state.refresh_token.clone();
        let answer = transport
            .token_request(
                "/oauth/v1/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", &self.client_id),
                    ("client_secret", self.client_secret.expose()),
                    ("refresh_token", refresh.expose()),
                ],
                None,
            )
            .await?;
        if let Some(r) = answer.refresh_token
            && !r.is_empty()
        {
            state.refresh_token = r;
        }
        state.refreshes += 1;
        // `expires_in` is bounded (1 s to a year) by `CachedToken::new`.
        let cached = CachedToken::new(
            answer.access_token.clone(),
            answer.expires_in,
            DEFAULT_LIFETIME,
            Instant::now(),
        );
        tracing::debug!(
            expires_in_s = cached.lifetime.as_secs(),
            "hubspot access token refreshed"
        );
        state.cached = Some(cached);
        Ok(answer.access_token)
    }
}

#[async_trait]
impl TokenSource for OAuthToken {
    async fn token(&self, transport: &Transport) -> Result<Secret, ConnectError> {
        let mut state = self.state.lock().await;
        if let Some(c) = &state.cached
            && c.usable(Instant::now(), self.margin)
        {
            return Ok(c.token.clone());
        }
        self.refresh(transport, &mut state).await
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
            "/oauth/v1/token",
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
            r#"{"access_token":"a","expires_in":1e308}"#,
            r#"{"access_token":"a","expires_in":0}"#,
            r#"{"access_token":"a","expires_in":"not a number"}"#,
        ] {
            let base = token_endpoint(body).await;
            let src = Arc::new(OAuthToken::new(
                "client".into(),
                Secret::new("secret"),
                Secret::new("refresh"),
                Duration::from_secs(300),
            ));
            let t = Transport::new(
                System::HubSpot,
                &base,
                Duration::from_secs(5),
                RetryPolicy::default(),
                RateLimit::HUBSPOT_BURST,
                RateLimit::HUBSPOT_SEARCH,
                src.clone(),
                HeaderStyle::HubSpot,
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
            assert_eq!(state.refreshes, 1);
        }
    }
}
