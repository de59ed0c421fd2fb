//! `tandem doctor` with the real binary against the sandbox: every check passes on the shipped
//! rules; each problem it looks for is found when the setup has it — a mapped property the
//! portal lacks, an Accelo status the deployment lacks, refused credentials, an address where
//! nothing listens — each with what to do, exit 1, and `--json` for scripts.

use serde_json::Value;

use crate::support::closed_port;
use crate::support::exec::*;

async fn doctor(p: &Project) -> (Option<i32>, Value) {
    let out = p.command(&["doctor", "--json"]).output().await.unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), doc)
}

fn findings<'a>(doc: &'a Value, check: &str) -> Vec<&'a Value> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

#[tokio::test]
async fn the_shipped_setup_passes_every_check() {
    let sb = sandbox(3, 5, 10).await;
    let p = Project::new(&sb, "");
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["ok"], true);
    for check in [
        "hubspot",
        "accelo",
        "hubspot properties",
        "accelo statuses",
        "store",
    ] {
        let f = findings(&doc, check);
        assert_eq!(f.len(), 1, "{check}: {doc:#}");
        assert_eq!(f[0]["status"], "ok", "{check}: {doc:#}");
    }
    // The text form says so too.
    let out = p.command(&["doctor"]).output().await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("all checks passed"));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_property_or_status_the_systems_lack_is_found_with_what_to_do() {
    let sb = sandbox(3, 5, 10).await;
    let p = Project::new(&sb, "");
    // A company field mapped to a custom property the portal does not have, and a status the
    // Accelo deployment does not have.
    let path = p.dir.path().join("companies.yaml");
    let rules = std::fs::read_to_string(&path).unwrap();
    let rules = rules
        .replace(
            "  - hubspot: phone\n    accelo: $.phone\n",
            "  - hubspot: phone\n    accelo: $.phone\n\n  - hubspot: tandem_office_phone\n    \
             accelo: $.fax\n    direction: pull\n",
        )
        .replace(
            "accelo_statuses: [Active, Prospect, Lead, Inactive, Former Client]",
            "accelo_statuses: [Active, Prospect, Lead, Inactive, Former Client, Dormant]",
        );
    let rules = format!(
        "{rules}\ncustom_properties:\n  - name: tandem_office_phone\n    type: phone_number\n"
    );
    std::fs::write(&path, rules).unwrap();
    let check = p
        .command(&["check", "--format", "json"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        check.status.code(),
        Some(0),
        "the rules themselves are valid: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(1), "{doc:#}");
    assert_eq!(doc["ok"], false);
    let props = findings(&doc, "hubspot properties");
    assert_eq!(props.len(), 1, "{doc:#}");
    assert_eq!(props[0]["status"], "problem");
    assert!(
        props[0]["message"]
            .as_str()
            .unwrap()
            .contains("`tandem_office_phone`, which the portal does not have"),
        "{doc:#}"
    );
    assert!(
        props[0]["fix"]
            .as_str()
            .unwrap()
            .contains("create `tandem_office_phone`")
    );
    let statuses = findings(&doc, "accelo statuses");
    assert_eq!(statuses.len(), 1, "{doc:#}");
    assert!(
        statuses[0]["message"]
            .as_str()
            .unwrap()
            .contains("`Dormant`"),
        "{doc:#}"
    );
    assert_eq!(findings(&doc, "hubspot")[0]["status"], "ok");
    sb.shutdown().await;
}

#[tokio::test]
async fn refused_credentials_and_an_unreachable_system_are_found() {
    let sb = sandbox(3, 5, 10).await;
    let mut p = Project::new(&sb, "");
    p.env.insert("HS_TOKEN".into(), "pat-na1-wrong".into());
    p.env.insert(
        "TANDEM_ACCELO_URL".into(),
        format!("http://127.0.0.1:{}", closed_port()),
    );
    let (code, doc) = doctor(&p).await;
    assert_eq!(code, Some(1), "{doc:#}");
    let hs = findings(&doc, "hubspot");
    assert_eq!(hs[0]["status"], "problem", "{doc:#}");
    assert!(
        hs[0]["fix"].as_str().unwrap().contains("credentials"),
        "{doc:#}"
    );
    let ac = findings(&doc, "accelo");
    assert_eq!(ac[0]["status"], "problem");
    assert!(
        ac[0]["message"]
            .as_str()
            .unwrap()
            .contains("TANDEM_ACCELO_URL"),
        "{doc:#}"
    );
    // What depends on them is not claimed to pass.
    assert_eq!(findings(&doc, "hubspot properties")[0]["status"], "skipped");
    assert_eq!(findings(&doc, "accelo statuses")[0]["status"], "skipped");
    // No secret in what it prints.
    let out = p.command(&["doctor"]).output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("pat-na1-wrong"), "{text}");
    assert!(!text.contains(sb.accelo_client_secret()), "{text}");
    sb.shutdown().await;
}
