//! Live updates for the pages: `GET /api/v1/events`, a server-sent event stream that sends the
//! queued and running jobs (`jobs`) whenever they change and the sync-log entries written
//! since the page was drawn (`log`, with the page's filters). The stream reads the store about
//! once a second and ends when the server shuts down; browsers reconnect on their own.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use futures::stream::{self, Stream};
use serde_json::json;

use super::api::{LogFilter, active_jobs, entry_json, signed_in};
use super::state::Console;

/// How often the stream looks at the store.
pub const EVERY: Duration = Duration::from_millis(700);

struct Cursor {
    console: Arc<Console>,
    filter: LogFilter,
    last_jobs: String,
    first: bool,
}

fn stream_of(cursor: Cursor) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(cursor, |mut c| async move {
        loop {
            if !c.first {
                tokio::select! {
                    () = c.console.stop.cancelled() => return None,
                    () = tokio::time::sleep(EVERY) => {}
                }
            }
            c.first = false;
            let mut events = Vec::new();
            if let Ok(jobs) = active_jobs(&c.console).await {
                let text = serde_json::to_string(&jobs).unwrap_or_default();
                if text != c.last_jobs {
                    c.last_jobs = text.clone();
                    events.push(Event::default().event("jobs").data(text));
                }
            }
            if c.filter.after.is_some() {
                let mut f = c.filter.clone();
                f.before = None;
                if let Ok(q) = f.query() {
                    let q = oldest_first(q);
                    if let Ok(entries) = c.console.store.log(&q).await
                        && let Some(last) = entries.last()
                    {
                        c.filter.after = Some(last.id.0);
                        let docs: Vec<_> = entries.iter().map(entry_json).collect();
                        events.push(
                            Event::default()
                                .event("log")
                                .data(json!({ "entries": docs }).to_string()),
                        );
                    }
                }
            }
            if !events.is_empty() {
                let batch: Vec<Result<Event, Infallible>> = events.into_iter().map(Ok).collect();
                return Some((stream::iter(batch), c));
            }
        }
    })
    .flatten()
}

/// New entries oldest first, at most 200 per look.
fn oldest_first(mut q: crate::store::LogQuery) -> crate::store::LogQuery {
    q.last = None;
    q.limit = Some(200);
    q
}

/// `GET /api/v1/events?after=ID&…filters`.
pub async fn events(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(filter): Query<LogFilter>,
) -> Response {
    if let Err(e) = signed_in(&c, &headers) {
        return e.into_response();
    }
    if let Err(e) = filter.query() {
        return e.into_response();
    }
    let cursor = Cursor {
        console: c,
        filter,
        last_jobs: String::new(),
        first: true,
    };
    Sse::new(stream_of(cursor))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
