//! Helpers of the executor and command tests: a sandbox without rate limits, connectors to it,
//! the shipped rules, both sides and the links read into a [`World`], the sandbox's counters,
//! and a [`Project`] directory to run commands in.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use tandem_core::compile::Program;
use tandem_core::model::{Direction, Link, Object, Record};
use tandem_core::plan::{Plan, PlanInput, plan};
use tandem_engine::connect::Connector;
use tandem_engine::store::Store;
use tandem_sandbox::{RateLimits, Sandbox, SandboxOptions};

pub use super::{accelo, fast_retry, hubspot, program, read_all, requests};

/// A sandbox with seeded data and no rate limits.
pub async fn sandbox(seed: u64, companies: usize, contacts: usize) -> Sandbox {
    Sandbox::start(SandboxOptions {
        seed,
        companies,
        contacts,
        rate_limits: RateLimits::unlimited(),
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

/// Everything of both sides plus the store's links.
pub struct World {
    pub hubspot: Vec<Record>,
    pub accelo: Vec<Record>,
    pub links: Vec<Link>,
}

impl World {
    pub async fn read(
        program: &Program,
        hs: &dyn Connector,
        ac: &dyn Connector,
        store: &dyn Store,
    ) -> World {
        let mut w = World {
            hubspot: Vec::new(),
            accelo: Vec::new(),
            links: Vec::new(),
        };
        for object in Object::ALL {
            let props = program.read_properties(object);
            w.hubspot.extend(read_all(hs, object, &props).await);
            w.accelo.extend(read_all(ac, object, &[]).await);
            w.links.extend(store.links(object).await.expect("links"));
        }
        w
    }

    pub fn input(&self, direction: Direction) -> PlanInput<'_> {
        let (source, target) = match direction {
            Direction::Pull => (&self.hubspot, &self.accelo),
            Direction::Push => (&self.accelo, &self.hubspot),
        };
        PlanInput::bulk(direction, source, target, &self.links)
    }

    pub fn plan(&self, program: &Program, direction: Direction) -> Plan {
        plan(program, &self.input(direction))
    }

    pub fn count(&self, system_records: &[Record], object: Object) -> usize {
        system_records.iter().filter(|r| r.object == object).count()
    }
}

/// The `writes` counter.
pub fn writes(stats: &Value) -> u64 {
    stats["writes"].as_u64().unwrap_or(0)
}

/// The difference of two stats' request counts, non-zero routes only.
pub fn delta(before: &Value, after: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    if let Some(m) = after["requests"].as_object() {
        for (k, v) in m {
            let d = v.as_u64().unwrap_or(0) - before["requests"][k].as_u64().unwrap_or(0);
            if d > 0 {
                out.insert(k.clone(), d);
            }
        }
    }
    out
}

/// Write routes only (every method but GET), from [`delta`].
pub fn write_routes(d: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    d.iter()
        .filter(|(k, _)| !k.starts_with("GET ") && !k.contains("/oauth") && !k.contains("search"))
        .filter(|(k, _)| !k.contains("/batch/read"))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// Writes on both sides, from `{"hubspot": stats, "accelo": stats}`.
pub fn total_writes(stats: &Value) -> u64 {
    writes(&stats["hubspot"]) + writes(&stats["accelo"])
}

// ---------------------------------------------------------------------------------------------
// Commands against a sandbox: a temporary directory with a config, the shipped rules and a store.

/// A project directory for command tests: `tandem.yaml` (connections through the `TANDEM_*`
/// overrides, the store in the directory), the shipped rule files, and the environment.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub env: BTreeMap<String, String>,
}

impl Project {
    /// A project against `sb` with `extra` appended to tandem.yaml (e.g. a `sync:` or
    /// `notify:` block).
    pub fn new(sb: &Sandbox, extra: &str) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("tandem.db");
        std::fs::write(
            dir.path().join("tandem.yaml"),
            format!(
                "hubspot:\n  token_env: HS_TOKEN\naccelo:\n  url: http://placeholder.invalid\n  \
                 client_id: placeholder\n  client_secret_env: AC_SECRET\nstore:\n  url: {}\n{extra}",
                store.display()
            ),
        )
        .expect("write config");
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        for f in ["companies.yaml", "contacts.yaml"] {
            std::fs::copy(shipped.join(f), dir.path().join(f)).expect("copy rules");
        }
        let env = BTreeMap::from([
            (
                "TANDEM_HUBSPOT_URL".to_string(),
                sb.hubspot_url().to_string(),
            ),
            ("TANDEM_ACCELO_URL".to_string(), sb.accelo_url().to_string()),
            (
                "TANDEM_ACCELO_CLIENT_ID".to_string(),
                sb.accelo_client_id().to_string(),
            ),
            ("HS_TOKEN".to_string(), sb.hubspot_token().to_string()),
            (
                "AC_SECRET".to_string(),
                sb.accelo_client_secret().to_string(),
            ),
        ]);
        Project { dir, env }
    }

    pub fn config(&self) -> std::path::PathBuf {
        self.dir.path().join("tandem.yaml")
    }

    pub fn store_path(&self) -> std::path::PathBuf {
        self.dir.path().join("tandem.db")
    }

    /// Runtime options for command functions called in-process.
    pub fn options(&self) -> tandem_engine::runtime::Options {
        tandem_engine::runtime::Options {
            config: Some(self.config()),
            rules: None,
            env: tandem_engine::runtime::Env::Map(self.env.clone()),
            retry: Some(fast_retry()),
            store: None,
        }
    }

    /// The store, opened from this process.
    pub async fn store(&self) -> Arc<dyn Store> {
        tandem_engine::store::open(&self.store_path().display().to_string())
            .await
            .expect("store")
    }

    /// The real binary with this project's config and environment.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_tandem"));
        c.args(args)
            .arg("--config")
            .arg(self.config())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(&self.env)
            .kill_on_drop(true);
        c
    }
}

/// Bytes a command printed, as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the real `tandem` with `args` in project `p` and waits for it.
pub async fn run(p: &Project, args: &[&str]) -> std::process::Output {
    p.command(args).output().await.unwrap()
}

/// Asserts a command exited with `code`, showing what it printed otherwise.
pub fn assert_code(out: &std::process::Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
