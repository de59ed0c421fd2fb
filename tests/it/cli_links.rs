//! A linked twin that no longer exists (issue 12, item 9) and `tandem links`, with the real
//! binary against the in-process sandbox: the default skips the record and says what to do;
//! `when_twin_missing: recreate` creates a new twin in place of the dead link; `tandem links
//! list|show|remove` inspect and forget links, `remove --all` starts over.

use std::collections::BTreeMap;

use serde_json::Value;
use tandem_core::model::{Link, Object, System};
use tandem_sandbox::Sandbox;

use crate::support::exec::*;

/// A project whose HubSpot company `hs` is linked to an Accelo company that does not exist.
async fn dead_link(sb: &Sandbox, seed_hs: usize) -> (Project, String) {
    let p = Project::new(sb, "");
    let hs = read_all(&*hubspot(sb), Object::Company, &[]).await;
    let h = hs[seed_hs].id.clone();
    p.store()
        .await
        .upsert_link(&Link {
            object: Object::Company,
            hubspot_id: h.clone(),
            accelo_id: "999999".into(),
            affiliation_id: None,
            last_synced: BTreeMap::new(),
        })
        .await
        .unwrap();
    (p, h)
}

fn set_policy(p: &Project, policy: &str) {
    let path = p.dir.path().join("companies.yaml");
    let rules = std::fs::read_to_string(&path).unwrap();
    let rules = rules.replacen(
        "object: company\n",
        &format!("object: company\nwhen_twin_missing: {policy}\n"),
        1,
    );
    std::fs::write(&path, rules).unwrap();
}

#[tokio::test]
async fn a_dead_link_is_skipped_with_advice_and_recreate_replaces_it() {
    let sb = sandbox(71, 6, 10).await;
    let (p, h) = dead_link(&sb, 0).await;

    // Default: skipped, and the reason says what to do.
    let out = run(&p, &["plan", "pull", "--object", "company"]).await;
    assert_code(&out, 0, "plan pull");
    let plan = text(&out.stdout);
    assert!(
        plan.contains("linked accelo company `999999` not found")
            && plan.contains("when_twin_missing: recreate")
            && plan.contains(&format!("tandem links remove hubspot company {h}")),
        "{plan}"
    );
    let out = run(&p, &["links", "show", "hubspot", "company", &h, "--json"]).await;
    assert_code(&out, 0, "links show");
    let link: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(link["accelo_id"], "999999");
    assert_eq!(link["hubspot_id"], h.as_str());

    // `recreate`, with every HubSpot company linked to an Accelo company that is gone: the
    // pull creates a new twin, or links the duplicate it finds, in place of each dead link.
    let store = p.store().await;
    let companies = read_all(&*hubspot(&sb), Object::Company, &[]).await;
    for (i, c) in companies.iter().enumerate().skip(1) {
        store
            .upsert_link(&Link {
                object: Object::Company,
                hubspot_id: c.id.clone(),
                accelo_id: format!("{}", 999000 + i),
                affiliation_id: None,
                last_synced: BTreeMap::new(),
            })
            .await
            .unwrap();
    }
    set_policy(&p, "recreate");
    assert_code(&run(&p, &["check"]).await, 0, "check");
    let out = run(&p, &["plan", "pull", "--object", "company", "--json"]).await;
    assert_code(&out, 0, "plan pull --json");
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ops: Vec<&str> = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert!(a["replaces_twin"].is_string(), "{a}");
            assert!(
                a["reason"]
                    .as_str()
                    .unwrap()
                    .contains("when_twin_missing: recreate"),
                "{a}"
            );
            a["op"].as_str().unwrap()
        })
        .collect();
    // Both paths: a create (criteria not applied again) and a link to a duplicate.
    assert!(ops.contains(&"create") && ops.contains(&"link"), "{ops:?}");
    let out = run(&p, &["pull"]).await;
    assert_code(&out, 0, "pull with recreate");
    let accelo_ids: Vec<String> = read_all(&*accelo(&sb), Object::Company, &[])
        .await
        .into_iter()
        .map(|r| r.id)
        .collect();
    for c in &companies {
        let now = store
            .link(Object::Company, System::HubSpot, &c.id)
            .await
            .unwrap()
            .expect("a new link");
        assert!(
            accelo_ids.contains(&now.accelo_id),
            "hubspot {} still linked to {}",
            c.id,
            now.accelo_id
        );
    }
    assert!(
        store
            .link(Object::Company, System::Accelo, "999999")
            .await
            .unwrap()
            .is_none()
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn links_lists_shows_and_removes() {
    let sb = sandbox(72, 4, 6).await;
    let (p, h) = dead_link(&sb, 1).await;

    let out = run(&p, &["links", "list"]).await;
    assert_code(&out, 0, "links list");
    assert_eq!(
        text(&out.stdout),
        format!("company hubspot:{h} ↔ accelo:999999\n")
    );
    let out = run(&p, &["links", "list", "--object", "contact", "--json"]).await;
    assert_code(&out, 0, "links list --json");
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        Value::Array(vec![])
    );

    let out = run(&p, &["links", "remove", "accelo", "company", "999999"]).await;
    assert_code(&out, 0, "links remove");
    assert!(
        text(&out.stderr).contains("removed the link"),
        "{}",
        text(&out.stderr)
    );
    let store = p.store().await;
    assert!(
        store
            .link(Object::Company, System::HubSpot, &h)
            .await
            .unwrap()
            .is_none()
    );
    let out = run(&p, &["links", "remove", "hubspot", "company", &h]).await;
    assert_code(&out, 2, "links remove, no link");
    assert!(
        text(&out.stderr).contains("has no link"),
        "{}",
        text(&out.stderr)
    );

    // `remove --all-missing` after a pull: only the dead link goes.
    assert_code(&run(&p, &["pull"]).await, 0, "pull");
    let live = store.links(Object::Company).await.unwrap();
    assert!(!live.is_empty());
    let other = read_all(&*hubspot(&sb), Object::Company, &[])
        .await
        .into_iter()
        .find(|r| !live.iter().any(|l| l.hubspot_id == r.id))
        .map(|r| r.id);
    let dead = other.unwrap_or_else(|| "12345678901".into());
    store
        .upsert_link(&Link {
            object: Object::Company,
            hubspot_id: dead.clone(),
            accelo_id: "999998".into(),
            affiliation_id: None,
            last_synced: BTreeMap::new(),
        })
        .await
        .unwrap();
    let out = run(&p, &["links", "remove", "--all-missing"]).await;
    assert_code(&out, 0, "links remove --all-missing");
    assert_eq!(
        text(&out.stdout),
        format!(
            "removed company hubspot:{dead} ↔ accelo:999998 (accelo company `999998` no longer exists)\n"
        )
    );
    assert_eq!(store.links(Object::Company).await.unwrap(), live);

    // `remove --all`: every link is forgotten.
    let out = run(&p, &["links", "remove", "--all"]).await;
    assert_code(&out, 0, "links remove --all");
    for object in Object::ALL {
        assert!(store.links(object).await.unwrap().is_empty());
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn unlink_plans_the_record_as_never_synced_in_place_of_the_dead_link() {
    let sb = sandbox(73, 6, 10).await;
    let (p, h) = dead_link(&sb, 2).await;
    set_policy(&p, "unlink");
    let out = run(&p, &["plan", "pull", "--object", "company", "--json"]).await;
    assert_code(&out, 0, "plan pull --json");
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let action = plan["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["source"]["id"] == h.as_str())
        .cloned()
        .unwrap();
    let reason = action["reason"].as_str().unwrap();
    assert!(!reason.contains("not found"), "{action}");
    if matches!(action["op"].as_str(), Some("create" | "link")) {
        assert_eq!(action["replaces_twin"], "999999", "{action}");
        assert!(reason.contains("when_twin_missing: unlink"), "{action}");
        assert_code(&run(&p, &["pull"]).await, 0, "pull with unlink");
        let now = p
            .store()
            .await
            .link(Object::Company, System::HubSpot, &h)
            .await
            .unwrap()
            .expect("a new link");
        assert_ne!(now.accelo_id, "999999");
    } else {
        assert!(reason.contains("criteria not met"), "{action}");
    }
    sb.shutdown().await;
}
