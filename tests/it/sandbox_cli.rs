//! `tandem sandbox` as a process: the first stdout line is the JSON contract, the simulators
//! answer at the printed URLs with the printed credentials, SIGTERM stops it with exit 0, and
//! bad flags exit 2 with a located message.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn tandem() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
}

#[test]
fn prints_one_json_line_serves_and_stops_on_sigterm() {
    let mut child = tandem()
        .args([
            "sandbox",
            "--seed",
            "3",
            "--companies",
            "5",
            "--contacts",
            "10",
            "--rate-limit",
            "off",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    for key in ["url", "token"] {
        assert!(info["hubspot"][key].is_string(), "hubspot.{key}");
    }
    for key in ["url", "client_id", "client_secret"] {
        assert!(info["accelo"][key].is_string(), "accelo.{key}");
    }
    let hs = info["hubspot"]["url"].as_str().unwrap();
    assert!(hs.starts_with("http://127.0.0.1:"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .get(format!("{hs}/crm/v3/objects/companies"))
            .bearer_auth(info["hubspot"]["token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["results"].as_array().unwrap().len(), 5);
        // The ids to try exist: three of each system and object, each one a live record.
        for (system, base) in [
            ("hubspot", hs.to_string()),
            (
                "accelo",
                info["accelo"]["url"].as_str().unwrap().to_string(),
            ),
        ] {
            for (object, resource) in [("company", "companies"), ("contact", "contacts")] {
                let ids = info["examples"][system][object].as_array().unwrap();
                assert_eq!(ids.len(), 3, "{system} {object}: {ids:?}");
                let records: Value = http
                    .get(format!("{base}/_sandbox/records/{resource}"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let live: Vec<String> = records
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| match &r["id"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                for id in ids {
                    assert!(live.contains(&id.as_str().unwrap().to_string()), "{id}");
                }
            }
        }
        let r = http
            .post(format!(
                "{}/oauth2/v0/token",
                info["accelo"]["url"].as_str().unwrap()
            ))
            .basic_auth(
                info["accelo"]["client_id"].as_str().unwrap(),
                info["accelo"]["client_secret"].as_str(),
            )
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "sandbox did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code.code(), Some(0));
}

#[test]
fn same_seed_prints_the_same_credentials() {
    let run = || {
        let mut child = tandem()
            .args([
                "sandbox",
                "--seed",
                "8",
                "--companies",
                "1",
                "--contacts",
                "1",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        serde_json::from_str::<Value>(&line).unwrap()
    };
    let (a, b) = (run(), run());
    assert_eq!(a["hubspot"]["token"], b["hubspot"]["token"]);
    assert_eq!(a["accelo"]["client_secret"], b["accelo"]["client_secret"]);
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for args in [
        vec!["sandbox", "--faults", "500=2"],
        vec!["sandbox", "--faults", "teapot=1"],
        vec!["sandbox", "--rate-limit", "hubspot=lots"],
        vec!["sandbox", "--webhook-secret", "s"],
        vec!["sandbox", "--webhook-url", "not a url"],
        vec!["sandbox", "--seed", "minus-one"],
        vec![
            "sandbox",
            "--accelo-webhook-url",
            "http://127.0.0.1:1/webhooks/accelo",
        ],
        vec!["sandbox", "--accelo-webhook-secret", "s"],
        vec![
            "sandbox",
            "--accelo-webhook-url",
            "not a url",
            "--accelo-webhook-secret",
            "s",
        ],
    ] {
        let out = tandem().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.trim().is_empty(), "{args:?} explains itself");
        assert!(out.stdout.is_empty(), "{args:?} printed no JSON line");
    }
}

#[test]
fn a_busy_port_exits_2() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let out = tandem()
        .args(["sandbox", "--hubspot-port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hubspot") && err.contains(&port), "{err}");
}

/// `--hubspot-scopes` and `--clock-skew`: the token introspection reports the scopes, the CRM
/// endpoints refuse what they do not cover (403 `MISSING_SCOPES`), and the `Date` headers run
/// the given seconds off; the JSON line carries the app's id and developer API key.
#[test]
fn scopes_and_clock_skew_flags_shape_the_simulators() {
    let mut child = tandem()
        .args([
            "sandbox",
            "--seed",
            "4",
            "--companies",
            "2",
            "--contacts",
            "2",
            "--hubspot-scopes",
            "crm.objects.companies.read, crm.objects.contacts.read",
            "--clock-skew",
            "-120",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: Value = serde_json::from_str(&line).unwrap();
    let hs = info["hubspot"]["url"].as_str().unwrap().to_string();
    let token = info["hubspot"]["token"].as_str().unwrap().to_string();
    assert!(info["hubspot"]["app_id"].is_u64(), "{info}");
    assert!(info["hubspot"]["developer_api_key"].is_string(), "{info}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let r = http
            .post(format!("{hs}/oauth/v2/private-apps/get/access-token-info"))
            .json(&serde_json::json!({"tokenKey": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["scopes"],
            serde_json::json!(["crm.objects.companies.read", "crm.objects.contacts.read"])
        );
        assert_eq!(body["appId"], info["hubspot"]["app_id"]);
        let r = http
            .get(format!("{hs}/crm/v3/objects/companies?limit=1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let date = r.headers()["date"].to_str().unwrap().to_string();
        let at = chrono::DateTime::parse_from_rfc2822(&date).unwrap();
        let off = at.timestamp() - chrono::Utc::now().timestamp();
        assert!((-123..=-118).contains(&off), "{date}: {off}");
        let r = http
            .post(format!("{hs}/crm/v3/objects/companies"))
            .bearer_auth(&token)
            .json(&serde_json::json!({"properties": {"name": "Refused Ltd"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["category"], "MISSING_SCOPES");
        assert_eq!(
            body["errors"][0]["context"]["requiredScopes"][0],
            "crm.objects.companies.write"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
}
