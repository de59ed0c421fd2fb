//! The HubSpot webhook subscriptions the rules need, for setting up the HubSpot app: one
//! `creation` and one `propertyChange` per trigger property of each object, plus the events the
//! automatic sync already handles without a trigger (deletion, merge, restore; a contact's
//! association change, which moves it to another company; a contact's privacy deletion).
//!
//! Pure: the list comes from the compiled rules alone, in a stable order (companies first; per
//! object creation, the property changes by name, then the other events).

use serde::Serialize;

use super::Program;
use crate::model::Object;

/// HubSpot's limit of subscriptions per app.
pub const MAX_SUBSCRIPTIONS: usize = 1000;

/// One webhook subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    /// `company` or `contact`.
    pub object: Object,
    /// The event after the object: `creation`, `propertyChange`, `deletion`, `merge`, `restore`,
    /// `associationChange`, `privacyDeletion`.
    pub event: &'static str,
    /// The property, for `propertyChange`.
    pub property: Option<String>,
}

impl Subscription {
    /// HubSpot's name of the event: `contact.propertyChange`.
    pub fn event_type(&self) -> String {
        format!("{}.{}", self.object, self.event)
    }

    /// Why the automatic sync wants this event, in words.
    pub fn purpose(&self) -> &'static str {
        match self.event {
            "creation" => "a new record is synced",
            "propertyChange" => "a change to this property is synced",
            "associationChange" => "a contact moved to another company is synced",
            "merge" => "the merged record is synced",
            "restore" => "a restored record is synced",
            _ => "logged (deletions are not propagated)",
        }
    }
}

impl Program {
    /// The webhook subscriptions the rules' trigger lists need, and the events the automatic
    /// sync handles on its own.
    pub fn hubspot_subscriptions(&self) -> Vec<Subscription> {
        let mut out = Vec::new();
        for rules in self.objects() {
            let object = rules.object;
            let sub = |event: &'static str, property: Option<String>| Subscription {
                object,
                event,
                property,
            };
            if rules.triggers.contains("created") {
                out.push(sub("creation", None));
            }
            for p in rules.triggers.iter().filter(|t| *t != "created") {
                out.push(sub("propertyChange", Some(p.clone())));
            }
            for event in ["deletion", "merge", "restore"] {
                out.push(sub(event, None));
            }
            if object == Object::Contact {
                out.push(sub("associationChange", None));
                out.push(sub("privacyDeletion", None));
            }
        }
        out
    }
}
