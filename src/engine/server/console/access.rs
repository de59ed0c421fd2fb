//! What every console handler shares: the API's error (its status and a sentence, answered as
//! JSON), who is signed in, the checks a state-changing request passes (same origin, the
//! session's CSRF token, the role), and the sync-log entry that says who did something.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::auth::{self, CSRF_HEADER, Session};
use super::state::Console;
use crate::snapshot::ReadError;
use crate::store::{JobId, LogBody, NewLogEntry, Notice, NoticeLevel, StoreError};
use tandem_core::rules::config::Role;

// ----- errors ---------------------------------------------------------------------------------

/// An API error: its status and a sentence for people.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong.
    pub message: String,
    /// More lines (what changed since a plan was made, diagnostics in words).
    pub details: Vec<String>,
}

/// The body of every error answer.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDoc {
    /// What went wrong, in a sentence.
    pub error: String,
    /// More lines, when there are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
}

impl ApiError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            details: Vec::new(),
        }
    }
    /// A 400.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    /// A 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorDoc {
                error: self.message,
                details: self.details,
            }),
        )
            .into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::warn!(target: "tandem::console", "the store failed: {e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store failed: {e}"),
        )
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> ApiError {
        match e {
            ReadError::Store(s) => s.into(),
            ReadError::NotFound { .. } => ApiError::not_found(e.to_string()),
            ReadError::Connect(c) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("could not read the systems: {c}"),
            ),
            other => ApiError::bad(other.to_string()),
        }
    }
}

/// What handlers answer.
pub type ApiResult<T> = Result<Json<T>, ApiError>;

/// A handler's answer: `status` with the document, or the error.
pub fn answer<T: Serialize>(status: StatusCode, result: Result<T, ApiError>) -> Response {
    match result {
        Ok(doc) => (status, Json(doc)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The `Set-Cookie` that ends the request's session, which it signs out.
pub fn sign_out(console: &Console, headers: &HeaderMap) -> String {
    if let Some(id) = auth::cookie_value(headers) {
        console.sessions.sign_out(&id);
    }
    auth::clear_cookie(console.secure_cookies() || auth::is_https(headers))
}

// ----- access ---------------------------------------------------------------------------------

/// The signed-in user of a request, or 401.
pub fn signed_in(console: &Console, headers: &HeaderMap) -> Result<Session, ApiError> {
    auth::cookie_value(headers)
        .and_then(|id| console.sessions.get(&id, &console.users()))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "sign in first"))
}

/// A state-changing request: from the console's own origin, carrying the session's CSRF
/// token (`token`: the header's or the form's), by a user whose role allows `need`.
pub fn may_change(
    console: &Console,
    headers: &HeaderMap,
    token: Option<&str>,
    need: Role,
) -> Result<Session, ApiError> {
    if !auth::same_origin(headers) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "refused: the request did not come from the console's own pages",
        ));
    }
    let session = signed_in(console, headers)?;
    let sent = token.or_else(|| headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()));
    if sent != Some(session.csrf.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "refused: the page is out of date (missing or wrong form token); reload it and try again",
        ));
    }
    if need == Role::Operator && !session.can_operate() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "{} is a viewer: running syncs and editing rules needs the operator role",
                session.user
            ),
        ));
    }
    Ok(session)
}

/// Logs who did something from the console, attached to a job when there is one.
pub async fn log_action(console: &Console, job: Option<JobId>, message: String) {
    let entry = NewLogEntry {
        job,
        body: LogBody::Notice(Notice {
            level: NoticeLevel::Info,
            message,
        }),
    };
    if let Err(e) = console.store.append_log(&entry).await {
        tracing::warn!(target: "tandem::console", "could not log a console action: {e}");
    }
}
