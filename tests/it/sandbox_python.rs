//! HubSpot's official Python client (`hubspot-api-client`) drives the simulator: create, read,
//! update, batch, search, page and associate must all deserialize into the client's own models.
//! A missing python3 or package fails this test (tests/run installs the package); it is never
//! skipped.

use tandem_sandbox::{Sandbox, SandboxOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_client_works_against_the_simulator() {
    let sb = Sandbox::start(SandboxOptions {
        seed: 4,
        companies: 20,
        contacts: 60,
        ..Default::default()
    })
    .await
    .unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/official_client.py"
    );
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .arg(sb.hubspot_url())
        .arg(sb.hubspot_token())
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 (install Python 3 and `pip install hubspot-api-client`): {e}"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "official client script failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("all official-client checks passed"),
        "{stdout}"
    );
    // The script's requests went through the real API paths.
    let stats = sb.hubspot_stats();
    assert!(
        stats["requests"]["POST /crm/v3/objects/contacts/search"]
            .as_u64()
            .unwrap()
            >= 2
    );
    assert!(stats["requests"]["PUT /crm/v4/objects/{fromObjectType}/{fromObjectId}/associations/default/{toObjectType}/{toObjectId}"].is_null());
    assert!(stats["requests"]["PUT /crm/v4/objects/contacts/{fromObjectId}/associations/default/companies/{toObjectId}"].as_u64().unwrap() >= 1);
    sb.shutdown().await;
}
