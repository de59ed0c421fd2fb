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
        // Default lifetime of a service token: 30 days.
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(30 * 24 * 3600).max(1));
        state.fetched += 1;
        state.cached = Some(CachedToken {
            token: answer.access_token.clone(),
            expires_at: Instant::now() + lifetime,
            lifetime,
        });
        tracing::debug!(
            expires_in_s = lifetime.as_secs(),
            "accelo access token obtained"
        );
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
