//! `GET /api/openapi.json`: the console API's OpenAPI 3.1 document, generated from the API's
//! own request and response types (their JSON Schemas, doc comments as descriptions) and the
//! operation table below, which lists every route the API serves.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{Map, Value, json};

use super::api::{
    ApplyRequest, DoctorDoc, ErrorDoc, ExportQuery, JobDoc, JobRequest, JobsQuery, LogFilter,
    LogPage, PlanDoc, PlanRequest, RecordAction, RecordDoc, SessionDoc, SignIn, StatusDoc,
};
use super::rules::{
    CheckDoc, Edit, FileDoc, ImpactDoc, SaveRequest, SavedDoc, TestsDoc, VersionDoc,
};

type Gen = fn(&mut SchemaGenerator) -> Schema;

fn of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// One operation of the API.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// Who may call it: `viewer` (any signed-in user), `operator`, or `anyone`.
    who: &'static str,
    /// Query parameters: the properties of this type.
    query: Option<Gen>,
    /// The JSON body.
    body: Option<Gen>,
    /// The success status and its JSON body (`None`: no body).
    ok: (u16, Option<Gen>),
    /// A non-JSON success body: its media type.
    media: Option<&'static str>,
    /// Error statuses besides 401 (every operation but sign-in may answer 401).
    errors: &'static [u16],
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    who: &'static str,
) -> Op {
    Op {
        method,
        path,
        summary,
        who,
        query: None,
        body: None,
        ok: (200, None),
        media: None,
        errors: &[],
    }
}

fn operations() -> Vec<Op> {
    vec![
        Op {
            body: Some(of::<SignIn>),
            ok: (200, Some(of::<SessionDoc>)),
            errors: &[400, 401, 403, 415, 422, 429],
            ..op(
                "post",
                "/api/v1/session",
                "Sign in (sets the session cookie)",
                "anyone",
            )
        },
        Op {
            ok: (200, Some(of::<SessionDoc>)),
            ..op(
                "get",
                "/api/v1/session",
                "Who is signed in, and the CSRF token",
                "viewer",
            )
        },
        Op {
            ok: (204, None),
            errors: &[403],
            ..op("delete", "/api/v1/session", "Sign out", "viewer")
        },
        Op {
            ok: (200, Some(of::<StatusDoc>)),
            errors: &[503],
            ..op(
                "get",
                "/api/v1/status",
                "The Integrations page: systems, health, runs, the automatic channel",
                "viewer",
            )
        },
        Op {
            query: Some(of::<JobsQuery>),
            ok: (200, Some(of::<Vec<JobDoc>>)),
            errors: &[400, 503],
            ..op("get", "/api/v1/jobs", "Jobs, newest first", "viewer")
        },
        Op {
            body: Some(of::<JobRequest>),
            ok: (202, Some(of::<JobDoc>)),
            errors: &[400, 403, 404, 415, 422, 502, 503],
            ..op(
                "post",
                "/api/v1/jobs",
                "Queue a pull, a push, or the push of one company or contact",
                "operator",
            )
        },
        Op {
            ok: (200, Some(of::<JobDoc>)),
            errors: &[400, 404, 503],
            ..op("get", "/api/v1/jobs/{id}", "One job", "viewer")
        },
        Op {
            ok: (202, Some(of::<JobDoc>)),
            errors: &[400, 403, 404, 409, 502, 503],
            ..op(
                "post",
                "/api/v1/jobs/{id}/run-anyway",
                "Run a job a safety limit stopped again, past the limits",
                "operator",
            )
        },
        Op {
            query: Some(of::<LogFilter>),
            ok: (200, Some(of::<LogPage>)),
            errors: &[400, 503],
            ..op(
                "get",
                "/api/v1/log",
                "A page of the sync log, newest first (keyset: `before`)",
                "viewer",
            )
        },
        Op {
            query: Some(of::<ExportQuery>),
            ok: (200, None),
            media: Some("text/csv"),
            errors: &[400, 503],
            ..op(
                "get",
                "/api/v1/log/export",
                "The filtered sync log as CSV or JSON lines",
                "viewer",
            )
        },
        Op {
            ok: (200, Some(of::<RecordDoc>)),
            errors: &[400, 404, 502, 503],
            ..op(
                "get",
                "/api/v1/records/{system}/{object}/{id}",
                "A record and its twin, field by field, with its history and plan",
                "viewer",
            )
        },
        Op {
            body: Some(of::<RecordAction>),
            ok: (202, Some(of::<JobDoc>)),
            errors: &[400, 403, 404, 409, 415, 422, 502, 503],
            ..op(
                "post",
                "/api/v1/records/{system}/{object}/{id}",
                "Push, pull or retry one record",
                "operator",
            )
        },
        Op {
            body: Some(of::<PlanRequest>),
            ok: (200, Some(of::<PlanDoc>)),
            errors: &[400, 403, 404, 415, 422, 502, 503],
            ..op(
                "post",
                "/api/v1/plans",
                "A dry run: the plan of a pull or push",
                "viewer",
            )
        },
        Op {
            body: Some(of::<ApplyRequest>),
            ok: (202, Some(of::<JobDoc>)),
            errors: &[400, 403, 404, 409, 415, 422, 502, 503],
            ..op(
                "post",
                "/api/v1/plans/apply",
                "Apply exactly a previewed plan (refused when the data changed)",
                "operator",
            )
        },
        Op {
            ok: (200, Some(of::<DoctorDoc>)),
            errors: &[404],
            ..op(
                "get",
                "/api/v1/doctor",
                "Check the setup against the systems, as `tandem doctor` does",
                "viewer",
            )
        },
        Op {
            ok: (200, Some(of::<Vec<FileDoc>>)),
            ..op(
                "get",
                "/api/v1/rules",
                "The rule files and tandem.yaml",
                "viewer",
            )
        },
        Op {
            body: Some(of::<Edit>),
            ok: (200, Some(of::<CheckDoc>)),
            errors: &[400, 403, 404, 415, 422],
            ..op(
                "post",
                "/api/v1/rules/check",
                "Check an edit, as `tandem check` does",
                "viewer",
            )
        },
        Op {
            body: Some(of::<Edit>),
            ok: (200, Some(of::<TestsDoc>)),
            errors: &[400, 403, 404, 415, 422],
            ..op(
                "post",
                "/api/v1/rules/test",
                "Run the rule files' own test cases on an edit",
                "viewer",
            )
        },
        Op {
            body: Some(of::<Edit>),
            ok: (200, Some(of::<ImpactDoc>)),
            errors: &[400, 403, 404, 415, 422, 502, 503],
            ..op(
                "post",
                "/api/v1/rules/preview",
                "The plan with the edit beside the plan with the running rules",
                "viewer",
            )
        },
        Op {
            body: Some(of::<SaveRequest>),
            ok: (200, Some(of::<SavedDoc>)),
            errors: &[400, 403, 404, 415, 422, 500, 503],
            ..op(
                "put",
                "/api/v1/rules/files/{file}",
                "Save a file (refused while its check fails)",
                "operator",
            )
        },
        Op {
            ok: (200, Some(of::<Vec<VersionDoc>>)),
            errors: &[404, 503],
            ..op(
                "get",
                "/api/v1/rules/files/{file}/versions",
                "A file's saved versions",
                "viewer",
            )
        },
        Op {
            ok: (200, Some(of::<SavedDoc>)),
            errors: &[400, 403, 404, 422, 500, 503],
            ..op(
                "post",
                "/api/v1/rules/files/{file}/versions/{id}/revert",
                "Restore a saved version",
                "operator",
            )
        },
        Op {
            query: Some(of::<LogFilter>),
            ok: (200, None),
            media: Some("text/event-stream"),
            errors: &[400],
            ..op(
                "get",
                "/api/v1/events",
                "Live updates: `jobs` and, with `after`, new `log` entries (server-sent events)",
                "viewer",
            )
        },
    ]
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let schema = match name {
                "id" if path.starts_with("/api/v1/jobs") || path.ends_with("/revert") => {
                    json!({"type": "integer", "format": "int64"})
                }
                "system" => json!({"type": "string", "enum": ["hubspot", "accelo"]}),
                "object" => json!({"type": "string", "enum": ["company", "contact"]}),
                "id" => json!({"type": "string", "pattern": "^[0-9]{1,20}$"}),
                "file" => json!({"type": "string", "examples": ["companies.yaml"]}),
                _ => json!({"type": "string"}),
            };
            json!({"name": name, "in": "path", "required": true, "schema": schema})
        })
        .collect()
}

fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    match schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
    {
        Some(name) => defs.get(name).unwrap_or(schema),
        None => schema,
    }
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut g = settings.into_generator();
    let error = of::<ErrorDoc>(&mut g).to_value();
    let mut paths = Map::new();
    let mut query_schemas = Vec::new();
    let ops = operations();
    for o in &ops {
        let ok = o.ok.1.map(|f| f(&mut g).to_value());
        let body = o.body.map(|f| f(&mut g).to_value());
        let query = o.query.map(|f| f(&mut g).to_value());
        query_schemas.push((o.path, o.method, ok, body, query));
    }
    let defs = g.take_definitions(true);
    for ((path, method, ok, body, query), o) in query_schemas.into_iter().zip(&ops) {
        let mut parameters = path_params(path);
        if let Some(q) = &query {
            let q = resolve(q, &defs);
            let required: Vec<&str> = q["required"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(props) = q["properties"].as_object() {
                for (name, schema) in props {
                    let mut schema = schema.clone();
                    if let Some(m) = schema.as_object_mut() {
                        m.remove("default");
                    }
                    parameters.push(json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": schema,
                    }));
                }
            }
        }
        let mut responses = Map::new();
        let success = match (&ok, o.media) {
            (Some(s), _) => {
                json!({"description": "OK", "content": {"application/json": {"schema": s}}})
            }
            (None, Some(m)) => {
                json!({"description": "OK", "content": {m: {"schema": {"type": "string"}}}})
            }
            (None, None) => json!({"description": "Done"}),
        };
        responses.insert(o.ok.0.to_string(), success);
        let mut errors: Vec<u16> = o.errors.to_vec();
        if o.who != "anyone" {
            errors.push(401);
        }
        if o.query.is_some() || o.body.is_some() || path.contains('{') {
            errors.push(400);
        }
        errors.sort_unstable();
        errors.dedup();
        for code in errors {
            responses.insert(
                code.to_string(),
                json!({"description": "Error", "content": {"application/json": {"schema": error}}}),
            );
        }
        if o.media == Some("text/csv") {
            responses.insert(
                "200".into(),
                json!({"description": "OK", "content": {
                    "text/csv": {"schema": {"type": "string"}},
                    "application/x-ndjson": {"schema": {"type": "string"}}
                }}),
            );
        }
        let mut operation = json!({
            "summary": o.summary,
            "description": format!("Who may call it: {}.", match o.who { "anyone" => "anyone", "operator" => "operators (with the CSRF token)", _ => "any signed-in user" }),
            "parameters": parameters,
            "responses": responses,
        });
        if o.who != "anyone" {
            operation["security"] = json!([{"session": []}]);
        }
        if let Some(b) = body {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": b}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    let mut schemas = Map::new();
    for (k, v) in defs {
        schemas.insert(k, v);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Tandem console API",
            "version": "1",
            "description": "What the console's pages use, for scripts too. Sign in with POST /api/v1/session; send the session cookie, and the CSRF token it answers with in X-CSRF-Token on every request that changes something.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": super::auth::COOKIE},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_once() {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let n: usize = paths
            .values()
            .map(|p| p.as_object().map_or(0, |m| m.len()))
            .sum();
        assert_eq!(n, operations().len());
        assert!(doc["components"]["schemas"]["StatusDoc"].is_object());
        // Every $ref resolves.
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = r.split('"').next().unwrap_or("");
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "dangling $ref {name}"
            );
        }
    }
}
