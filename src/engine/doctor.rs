//! `tandem doctor`: checks a configuration against the real systems before anything runs, and
//! says for each problem what to do. Each check gives one [`Finding`]:
//! - each system is reachable and accepts the credentials;
//! - the HubSpot token's granted scopes cover what the rules need: reading companies and
//!   contacts, writing those the rules write, and the events of the webhook subscriptions when
//!   the automatic sync is configured (`server.webhook_secret_env`) — read by token
//!   introspection (OAuth) or the private-app token information;
//! - every HubSpot property the rules map exists in the portal, writable where the rules write
//!   it, of a compatible type, and — for the status property — with every value the status
//!   tables use among its options;
//! - every Accelo status the rules name exists in the deployment;
//! - the HubSpot app's webhook subscriptions cover the trigger lists (through the webhooks
//!   API, with `hubspot.app_id` and a developer API key; without them the check is skipped and
//!   says how to enable it);
//! - the clock is close to each system's, by their answers' `Date` headers (HubSpot refuses
//!   webhook signatures more than 5 minutes old, and so does Tandem);
//! - the store opens (which brings its migrations up to date).
//!
//! A check that cannot run because an earlier one failed (the portal's properties when HubSpot
//! cannot be reached) says so instead of passing. A `skipped` finding is not a problem by
//! itself (exit 0): one skipped because of a failure comes with that failure's problem, and one
//! skipped because the configuration does not allow it says what would.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::connect::{ConnectError, Connector, FieldInfo};
use crate::runtime::Runtime;
use tandem_core::compile::subscriptions::Subscription;
use tandem_core::compile::{FieldDirection, ObjectRules};
use tandem_core::model::{Object, System};
use tandem_core::rules::config::{ENV_HUBSPOT_TOKEN, ENV_HUBSPOT_WEBHOOK_SECRET};
use tandem_core::rules::raw::PropertyType;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked, as a short name: `hubspot`, `accelo`, `hubspot scopes`, `hubspot
    /// properties`, `accelo statuses`, `hubspot subscriptions`, `clock`, `store`.
    pub check: String,
    /// `ok`, `problem`, or `skipped` (could not be checked).
    pub status: &'static str,
    /// What was found, in words.
    pub message: String,
    /// What to do about it (for problems and skipped checks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    fn ok(check: &str, message: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status: "ok",
            message: message.into(),
            fix: None,
        }
    }

    fn problem(check: &str, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status: "problem",
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    fn skipped(check: &str, why: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status: "skipped",
            message: why.into(),
            fix: Some("fix the problem above, then run `tandem doctor` again".into()),
        }
    }

    fn not_checked(check: &str, why: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            check: check.into(),
            status: "skipped",
            message: why.into(),
            fix: Some(fix.into()),
        }
    }

    /// Whether this is a problem. A skipped check is not one by itself: when it was skipped
    /// because of a failure, that failure is a finding of its own.
    pub fn is_problem(&self) -> bool {
        self.status == "problem"
    }
}

/// Runs every check.
pub async fn examine(rt: &Runtime) -> Vec<Finding> {
    let mut out = Vec::new();
    let hs = rt.connector(System::HubSpot);
    let ac = rt.connector(System::Accelo);
    let hs_ok = reachable(&mut out, "hubspot", hs.as_ref()).await;
    let ac_ok = reachable(&mut out, "accelo", ac.as_ref()).await;
    if hs_ok {
        hubspot_scopes(&mut out, rt, hs.as_ref()).await;
    } else {
        out.push(Finding::skipped(
            "hubspot scopes",
            "not checked: HubSpot could not be used",
        ));
    }
    if hs_ok {
        hubspot_properties(&mut out, rt, hs.as_ref()).await;
    } else {
        out.push(Finding::skipped(
            "hubspot properties",
            "not checked: HubSpot could not be used",
        ));
    }
    if ac_ok {
        accelo_statuses(&mut out, rt, ac.as_ref()).await;
    } else {
        out.push(Finding::skipped(
            "accelo statuses",
            "not checked: Accelo could not be used",
        ));
    }
    if hs_ok {
        hubspot_subscriptions(&mut out, rt).await;
    } else {
        out.push(Finding::skipped(
            "hubspot subscriptions",
            "not checked: HubSpot could not be used",
        ));
    }
    let reached: Vec<&dyn Connector> = [(hs_ok, hs.as_ref()), (ac_ok, ac.as_ref())]
        .into_iter()
        .filter(|(ok, _)| *ok)
        .map(|(_, c)| c)
        .collect();
    clock(&mut out, &reached);
    match rt.store().await {
        Ok(store) => out.push(Finding::ok(
            "store",
            format!("{} opens and is up to date", store.location()),
        )),
        Err(e) => out.push(Finding::problem(
            "store",
            e.to_string(),
            "check `store.url` in tandem.yaml (or TANDEM_STORE) and that the database is up",
        )),
    }
    out
}

async fn reachable(out: &mut Vec<Finding>, name: &str, c: &dyn Connector) -> bool {
    match c.check().await {
        Ok(()) => {
            out.push(Finding::ok(name, "reachable, the credentials are accepted"));
            true
        }
        Err(e) => {
            let fix = if matches!(e, crate::connect::ConnectError::Credentials { .. }) {
                format!("check the {name} credentials named in tandem.yaml")
            } else {
                format!(
                    "check the {name} URL and credentials in tandem.yaml (or their TANDEM_* \
                     overrides) and that the service is up"
                )
            };
            out.push(Finding::problem(name, e.to_string(), fix));
            false
        }
    }
}

/// The HubSpot type names a rule's property type is compatible with.
fn compatible(kind: PropertyType) -> &'static [&'static str] {
    match kind {
        PropertyType::String | PropertyType::PhoneNumber => {
            &["string", "phone_number", "enumeration"]
        }
        PropertyType::Number => &["number", "string"],
        PropertyType::Date => &["date", "datetime", "string"],
        PropertyType::Datetime => &["datetime", "date", "string"],
        PropertyType::Enumeration => &["enumeration"],
        PropertyType::Bool => &["bool", "enumeration"],
    }
}

fn writes_hubspot(d: FieldDirection) -> bool {
    matches!(d, FieldDirection::Both | FieldDirection::Push)
}

async fn hubspot_properties(out: &mut Vec<Finding>, rt: &Runtime, hs: &dyn Connector) {
    let check = "hubspot properties";
    let mut problems = 0;
    let mut checked = 0;
    for rules in rt.program.objects() {
        let object = rules.object;
        let fields = match hs.fields(object).await {
            Ok(f) => f,
            Err(e) => {
                out.push(Finding::problem(
                    check,
                    format!("cannot read the portal's {object} properties: {e}"),
                    "give the HubSpot app read access to the CRM schemas",
                ));
                problems += 1;
                continue;
            }
        };
        let portal: BTreeMap<&str, &FieldInfo> =
            fields.iter().map(|f| (f.name.as_str(), f)).collect();
        for (name, writes) in mapped(rules) {
            checked += 1;
            let Some(field) = portal.get(name.as_str()) else {
                out.push(Finding::problem(
                    check,
                    format!("the rules map the {object} property `{name}`, which the portal does not have"),
                    format!(
                        "create `{name}` in HubSpot (Settings → Properties → {}) or correct the \
                         rule in {}",
                        object.plural(),
                        rules.file
                    ),
                ));
                problems += 1;
                continue;
            };
            if writes && field.read_only {
                out.push(Finding::problem(
                    check,
                    format!("the rules write the {object} property `{name}`, which is read-only in the portal"),
                    format!("make the mapping of `{name}` pull-only in {}", rules.file),
                ));
                problems += 1;
            }
            if let Some(p) = rules.properties.get(name.as_str())
                && !compatible(p.kind).contains(&field.kind.as_str())
            {
                out.push(Finding::problem(
                    check,
                    format!(
                        "the {object} property `{name}` is of type `{}` in the portal; the rules \
                         expect {:?}",
                        field.kind, p.kind
                    ),
                    format!(
                        "declare `{name}` with its portal type under custom_properties in {}",
                        rules.file
                    ),
                ));
                problems += 1;
            }
        }
        if let Some(status) = &rules.status
            && let Some(field) = portal.get(status.hubspot.as_str())
        {
            let options: BTreeSet<String> =
                field.options.iter().map(|o| o.to_lowercase()).collect();
            let used: BTreeSet<&String> = status.pull.keys().chain(status.push.values()).collect();
            for v in used {
                if !options.contains(&v.to_lowercase()) {
                    out.push(Finding::problem(
                        check,
                        format!(
                            "the status table uses `{v}` for the {object} property `{}`, which is \
                             not one of its options in the portal",
                            status.hubspot
                        ),
                        format!(
                            "add `{v}` to the property's options in HubSpot, or correct the \
                             status table in {}",
                            rules.file
                        ),
                    ));
                    problems += 1;
                }
            }
        }
    }
    if problems == 0 {
        out.push(Finding::ok(
            check,
            format!("all {checked} mapped properties exist, with compatible types and options"),
        ));
    }
}

/// The HubSpot properties the rules map, each with whether the rules write it.
fn mapped(rules: &ObjectRules) -> BTreeMap<String, bool> {
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    for m in &rules.mappings {
        if m.direction == FieldDirection::None {
            continue;
        }
        let w = out.entry(m.hubspot.clone()).or_default();
        *w |= writes_hubspot(m.direction);
    }
    if let Some(s) = &rules.status {
        let w = out.entry(s.hubspot.clone()).or_default();
        *w |= writes_hubspot(s.direction);
    }
    out
}

async fn accelo_statuses(out: &mut Vec<Finding>, rt: &Runtime, ac: &dyn Connector) {
    let check = "accelo statuses";
    let mut problems = 0;
    let mut named = 0;
    for rules in rt.program.objects() {
        let object = rules.object;
        let mut wanted: BTreeSet<String> = rules.accelo_statuses.iter().cloned().collect();
        if let Some(s) = &rules.status {
            wanted.extend(s.pull.values().cloned());
            wanted.extend(s.push.keys().cloned());
        }
        if wanted.is_empty() {
            continue;
        }
        let have: BTreeSet<String> = match ac.status_titles(object).await {
            Ok(t) => t.iter().map(|t| t.trim().to_lowercase()).collect(),
            Err(e) => {
                out.push(Finding::problem(
                    check,
                    format!("cannot read the deployment's {object} statuses: {e}"),
                    "give the Accelo application read access to statuses",
                ));
                problems += 1;
                continue;
            }
        };
        for title in wanted {
            named += 1;
            if !have.contains(&title.trim().to_lowercase()) {
                out.push(Finding::problem(
                    check,
                    format!("the rules name the Accelo {object} status `{title}`, which the deployment does not have"),
                    format!(
                        "create it in Accelo (Configuration → {} → Statuses) or correct {}",
                        match object {
                            Object::Company => "Companies",
                            Object::Contact => "Contacts",
                        },
                        rules.file
                    ),
                ));
                problems += 1;
            }
        }
    }
    if problems == 0 {
        out.push(Finding::ok(
            check,
            format!("all {named} statuses the rules name exist"),
        ));
    }
}

/// The clock difference beyond which `tandem doctor` reports a problem.
pub const CLOCK_TOLERANCE_SECONDS: i64 = 60;

/// HubSpot's window for webhook signature timestamps.
const SIGNATURE_WINDOW_SECONDS: i64 = 300;

/// `5 min 3 s`, `42 s`.
fn span(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

/// The clock check: each reached system's `Date` header against this machine's clock.
fn clock(out: &mut Vec<Finding>, reached: &[&dyn Connector]) {
    let check = "clock";
    let offsets: Vec<(System, i64)> = reached
        .iter()
        .filter_map(|c| {
            // Rounded to the second (HTTP dates have whole seconds).
            c.clock_offset()
                .map(|d| (c.system(), (d.num_milliseconds() + 500).div_euclid(1000)))
        })
        .collect();
    let name = |s: System| match s {
        System::HubSpot => "HubSpot",
        System::Accelo => "Accelo",
    };
    if offsets.is_empty() {
        out.push(Finding::not_checked(
            check,
            "not checked: no system answered with a `Date` header",
            "make sure this machine's clock is synchronised (NTP); HubSpot's webhook signatures \
             are refused when they are more than 5 minutes old",
        ));
        return;
    }
    let mut problems = 0;
    for (system, secs) in &offsets {
        if secs.abs() <= CLOCK_TOLERANCE_SECONDS {
            continue;
        }
        problems += 1;
        let way = if *secs > 0 { "ahead of" } else { "behind" };
        let effect = match system {
            System::HubSpot if secs.abs() > SIGNATURE_WINDOW_SECONDS => {
                "its webhooks are refused: their signatures' timestamps are more than 5 minutes \
                 off"
            }
            System::HubSpot => "its webhooks' signatures (valid for 5 minutes) are at risk",
            System::Accelo => "its modification times and this machine's disagree by as much",
        };
        out.push(Finding::problem(
            check,
            format!(
                "{}'s clock is {} {way} this machine's (offset {secs:+} s, by its `Date` \
                 header): {effect}",
                name(*system),
                span(*secs)
            ),
            "synchronise this machine's clock with NTP (e.g. `timedatectl set-ntp true`, or \
             chrony); if it is already synchronised, tell the system's administrator",
        ));
    }
    if problems == 0 {
        let list: Vec<String> = offsets
            .iter()
            .map(|(s, o)| format!("{} {o:+} s", name(*s)))
            .collect();
        out.push(Finding::ok(
            check,
            format!(
                "within {CLOCK_TOLERANCE_SECONDS} s of the systems' clocks ({})",
                list.join(", ")
            ),
        ));
    }
}

/// Whether the automatic sync (HubSpot webhooks) is configured.
fn webhooks_configured(rt: &Runtime) -> bool {
    rt.config.server.webhook_secret_env.is_some()
        || rt
            .env(ENV_HUBSPOT_WEBHOOK_SECRET)
            .is_some_and(|v| !v.is_empty())
}

/// The scopes the rules need, each with why.
pub fn needed_scopes(rt: &Runtime) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let webhooks = webhooks_configured(rt);
    for rules in rt.program.objects() {
        let plural = rules.object.plural();
        out.entry(format!("crm.objects.{plural}.read"))
            .or_default()
            .push(format!("reading {plural}"));
        let written: Vec<String> = mapped(rules)
            .into_iter()
            .filter(|(_, w)| *w)
            .map(|(n, _)| format!("`{n}`"))
            .collect();
        if !written.is_empty() {
            let shown = if written.len() > 5 {
                format!("{}, …", written[..5].join(", "))
            } else {
                written.join(", ")
            };
            out.entry(format!("crm.objects.{plural}.write"))
                .or_default()
                .push(format!("writing {plural} (the rules write {shown})"));
        }
        if webhooks {
            out.entry(format!("crm.objects.{plural}.read"))
                .or_default()
                .push(format!(
                    "the automatic sync's webhook subscriptions to {} events",
                    rules.object
                ));
        }
    }
    out
}

/// Whether Tandem authenticates to HubSpot with OAuth (else a private app's token), as
/// `Config::secrets` decides it.
fn uses_oauth(rt: &Runtime) -> bool {
    rt.env(ENV_HUBSPOT_TOKEN).is_none_or(|v| v.is_empty())
        && rt.config.hubspot.token_env.is_none()
        && rt.config.hubspot.oauth.is_some()
}

async fn hubspot_scopes(out: &mut Vec<Finding>, rt: &Runtime, hs: &dyn Connector) {
    let check = "hubspot scopes";
    let needed = needed_scopes(rt);
    let names: Vec<&str> = needed.keys().map(String::as_str).collect();
    let by_hand = format!(
        "check by hand that the HubSpot app has these scopes: {}",
        names.join(", ")
    );
    let granted = match hs.granted_scopes().await {
        Ok(Some(g)) => g,
        Ok(None) => {
            out.push(Finding::not_checked(
                check,
                "not checked: HubSpot does not say which scopes this token has",
                by_hand,
            ));
            return;
        }
        Err(e) => {
            out.push(Finding::not_checked(
                check,
                format!("not checked: cannot read the token's scopes: {e}"),
                by_hand,
            ));
            return;
        }
    };
    let have: BTreeSet<&str> = granted.scopes.iter().map(String::as_str).collect();
    let oauth = uses_oauth(rt);
    let mut problems = 0;
    for (scope, why) in &needed {
        if have.contains(scope.as_str()) {
            continue;
        }
        problems += 1;
        let fix = if oauth {
            format!(
                "add `{scope}` to the HubSpot app's scopes, install the app in the portal again \
                 and give Tandem the new refresh token (the variable named by \
                 `hubspot.oauth.refresh_token_env`)"
            )
        } else {
            format!(
                "add `{scope}` in the private app's settings in HubSpot (Development → Legacy \
                 apps, or Settings → Integrations → Private Apps: the app → Scopes), commit the \
                 change, and give Tandem the token HubSpot then shows if it changed"
            )
        };
        out.push(Finding::problem(
            check,
            format!(
                "the HubSpot token lacks the scope `{scope}`, needed for {}",
                why.join("; ")
            ),
            fix,
        ));
    }
    if problems == 0 {
        out.push(Finding::ok(
            check,
            format!(
                "the token has every scope the rules need ({})",
                names.join(", ")
            ),
        ));
    }
}

/// `contact.propertyChange:email`.
fn label(event_type: &str, property: Option<&str>) -> String {
    match property {
        Some(p) => format!("{event_type} of `{p}`"),
        None => event_type.to_string(),
    }
}

/// A list of names, the first `max` of them and how many more.
fn some_of(items: &[String], max: usize) -> String {
    if items.len() <= max {
        items.join(", ")
    } else {
        format!("{} and {} more", items[..max].join(", "), items.len() - max)
    }
}

/// What the app's subscriptions lack of `wanted`: (missing, paused ids with their names).
pub fn compare_subscriptions(
    wanted: &[Subscription],
    have: &[crate::connect::AppSubscription],
) -> (Vec<Subscription>, Vec<(String, String)>) {
    let mut missing = Vec::new();
    let mut paused = Vec::new();
    for w in wanted {
        let et = w.event_type();
        let found: Vec<&crate::connect::AppSubscription> = have
            .iter()
            .filter(|h| h.event_type == et && h.property.as_deref() == w.property.as_deref())
            .collect();
        if found.is_empty() {
            missing.push(w.clone());
        } else if !found.iter().any(|h| h.active) {
            paused.push((found[0].id.clone(), label(&et, w.property.as_deref())));
        }
    }
    (missing, paused)
}

async fn hubspot_subscriptions(out: &mut Vec<Finding>, rt: &Runtime) {
    let check = "hubspot subscriptions";
    let app = match rt.hubspot_app() {
        Ok(Some(app)) => app,
        Ok(None) => {
            out.push(Finding::not_checked(
                check,
                "not checked: listing the app's webhook subscriptions needs the app's id and a \
                 developer API key",
                "to enable this check, set `hubspot.app_id` and `hubspot.developer_api_key_env` \
                 in tandem.yaml (a public app); a private app's subscriptions can only be seen \
                 in its settings: compare them with `tandem hubspot subscriptions`",
            ));
            return;
        }
        Err(e) => {
            out.push(Finding::problem(
                check,
                e.to_string(),
                "set the developer API key's variable, or remove `hubspot.app_id` and \
                 `hubspot.developer_api_key_env` from tandem.yaml",
            ));
            return;
        }
    };
    let have = match app.subscriptions().await {
        Ok(h) => h,
        Err(e) => {
            let fix = if matches!(
                e,
                ConnectError::Credentials { .. } | ConnectError::Rejected { .. }
            ) {
                "check `hubspot.app_id` and the developer API key (the developer account's \
                 Apps → the app, and its API key)"
            } else {
                "check `hubspot.url` and that HubSpot is reachable"
            };
            out.push(Finding::problem(
                check,
                format!("cannot list the app's webhook subscriptions: {e}"),
                fix,
            ));
            return;
        }
    };
    let wanted = rt.program.hubspot_subscriptions();
    let (missing, paused) = compare_subscriptions(&wanted, &have);
    if !missing.is_empty() {
        let names: Vec<String> = missing
            .iter()
            .map(|s| label(&s.event_type(), s.property.as_deref()))
            .collect();
        out.push(Finding::problem(
            check,
            format!(
                "the app {} lacks {} of the {} webhook subscriptions the rules need: {}",
                app.app_id(),
                missing.len(),
                wanted.len(),
                some_of(&names, 12)
            ),
            "run `tandem hubspot subscriptions --apply` to create them (or create them in the \
             app's webhook settings: `tandem hubspot subscriptions` lists them)",
        ));
    }
    if !paused.is_empty() {
        let names: Vec<String> = paused.iter().map(|(_, n)| n.clone()).collect();
        out.push(Finding::problem(
            check,
            format!(
                "{} webhook subscriptions of the app {} are paused: {}",
                paused.len(),
                app.app_id(),
                some_of(&names, 12)
            ),
            "run `tandem hubspot subscriptions --apply` to activate them (or activate them in \
             the app's webhook settings)",
        ));
    }
    if missing.is_empty() && paused.is_empty() {
        out.push(Finding::ok(
            check,
            format!(
                "the app {} has all {} webhook subscriptions the rules need, active",
                app.app_id(),
                wanted.len()
            ),
        ));
    }
}
