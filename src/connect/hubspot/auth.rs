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
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(1800).max(1));
        if let Some(r) = answer.refresh_token
            && !r.is_empty()
        {
            state.refresh_token = r;
        }
        state.refreshes += 1;
        state.cached = Some(CachedToken {
            token: answer.access_token.clone(),
            expires_at: Instant::now() + lifetime,
            lifetime,
        });
        tracing::debug!(
            expires_in_s = lifetime.as_secs(),
            "hubspot access token refreshed"
        );
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
