//! HubSpot's webhooks v3 management API for a public app: list the app's webhook subscriptions
//! (`GET /webhooks/v3/{appId}/subscriptions`), create one (`POST` the same path; 201), and
//! activate paused ones (`POST …/subscriptions/batch/update`). It authenticates with the
//! developer account's API key as the `hapikey` query parameter, never a bearer token; errors
//! name the request by method and path only, so the key never reaches a message. Private apps
//! cannot manage webhooks through the API (only in their settings).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::connect::de;
use crate::connect::http::{Answer, Body, Call, HeaderStyle, StaticToken, Transport};
use crate::connect::{ConnectError, RateLimit, RetryPolicy, Secret};
use tandem_core::model::System;

/// One webhook subscription of the app, as HubSpot lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSubscription {
    /// HubSpot's id of the subscription.
    pub id: String,
    /// `contact.propertyChange`, `company.creation`, …
    pub event_type: String,
    /// The property of a `propertyChange` subscription.
    pub property: Option<String>,
    /// Whether it delivers events.
    pub active: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(deserialize_with = "de::id")]
    id: String,
    event_type: String,
    #[serde(default)]
    property_name: Option<String>,
    #[serde(default)]
    active: bool,
}

impl From<Wire> for AppSubscription {
    fn from(w: Wire) -> AppSubscription {
        AppSubscription {
            id: w.id,
            event_type: w.event_type,
            property: w.property_name.filter(|p| !p.is_empty()),
            active: w.active,
        }
    }
}

#[derive(Deserialize)]
struct List {
    #[serde(default)]
    results: Vec<Wire>,
}

/// A client of one app's webhook settings.
#[derive(Debug)]
pub struct HubSpotApp {
    t: Transport,
    app_id: u64,
    key: Secret,
}

impl HubSpotApp {
    /// A client of app `app_id` at `base_url` (`https://api.hubapi.com`) with the developer API
    /// key `key`. Makes no request.
    pub fn new(
        base_url: &str,
        app_id: u64,
        key: Secret,
        retry: Option<RetryPolicy>,
    ) -> Result<HubSpotApp, ConnectError> {
        let t = Transport::new(
            System::HubSpot,
            base_url,
            Duration::from_secs(30),
            retry.unwrap_or_default(),
            RateLimit::HUBSPOT_BURST,
            RateLimit::HUBSPOT_SEARCH,
            Arc::new(StaticToken(Secret::new(""))),
            HeaderStyle::HubSpot,
        )?;
        Ok(HubSpotApp { t, app_id, key })
    }

    /// The app's id.
    pub fn app_id(&self) -> u64 {
        self.app_id
    }

    fn path(&self) -> String {
        format!("/webhooks/v3/{}/subscriptions", self.app_id)
    }

    fn call(&self, method: Method, path: String, body: Body) -> Call {
        Call::new(method, path, body)
            .without_bearer()
            .query("hapikey", self.key.expose())
    }

    fn rejected(&self, call: &Call, ans: &Answer) -> ConnectError {
        let (category, message) = crate::connect::http::describe_error(&ans.body);
        ConnectError::Rejected {
            system: System::HubSpot,
            request: call.label(),
            status: ans.status,
            category,
            message,
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        call: &Call,
        ans: &Answer,
    ) -> Result<T, ConnectError> {
        serde_json::from_slice(&ans.body).map_err(|e| ConnectError::Protocol {
            system: System::HubSpot,
            request: call.label(),
            message: format!("the body does not parse: {e}"),
        })
    }

    /// Every webhook subscription of the app.
    pub async fn subscriptions(&self) -> Result<Vec<AppSubscription>, ConnectError> {
        let call = self.call(Method::GET, self.path(), Body::None);
        let ans = self.t.send(&call).await?;
        if ans.status != 200 {
            return Err(self.rejected(&call, &ans));
        }
        let list: List = self.parse(&call, &ans)?;
        Ok(list.results.into_iter().map(Into::into).collect())
    }

    /// Creates an active subscription to `event_type` (of `property`, for a
    /// `propertyChange`).
    pub async fn create(
        &self,
        event_type: &str,
        property: Option<&str>,
    ) -> Result<AppSubscription, ConnectError> {
        let mut body = json!({"eventType": event_type, "active": true});
        if let Some(p) = property {
            body["propertyName"] = json!(p);
        }
        let call = self.call(Method::POST, self.path(), Body::Json(body));
        let ans = self.t.send(&call).await?;
        if !matches!(ans.status, 200 | 201) {
            return Err(self.rejected(&call, &ans));
        }
        let w: Wire = self.parse(&call, &ans)?;
        Ok(w.into())
    }

    /// Activates the subscriptions with these ids (a paused subscription delivers nothing).
    pub async fn activate(&self, ids: &[String]) -> Result<Vec<AppSubscription>, ConnectError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut inputs = Vec::new();
        for id in ids {
            // The batch body takes ids as integers.
            let n: u64 = id.parse().map_err(|_| ConnectError::Invalid {
                system: System::HubSpot,
                message: format!("the subscription id `{id}` is not a number"),
            })?;
            inputs.push(json!({"id": n, "active": true}));
        }
        let call = self
            .call(
                Method::POST,
                format!("{}/batch/update", self.path()),
                Body::Json(json!({"inputs": inputs})),
            )
            .idempotent();
        let ans = self.t.send(&call).await?;
        if !matches!(ans.status, 200 | 207) {
            return Err(self.rejected(&call, &ans));
        }
        let list: List = self.parse(&call, &ans)?;
        Ok(list.results.into_iter().map(Into::into).collect())
    }
}
