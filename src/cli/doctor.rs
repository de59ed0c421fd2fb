//! `tandem doctor [--json]`: checks the configuration against the real systems — each system
//! reachable with its credentials accepted, the mapped HubSpot properties present with
//! compatible types and options, the Accelo statuses the rules name present, the store up to
//! date, the token's scopes, the app's webhook subscriptions, the clocks — one line per finding
//! with what to do. Exit 0 when all is well (checks the setup cannot run are listed as
//! `skipped`, with how to enable them), 1 with problems, 2 when the configuration itself does
//! not load.

use std::io::Write;

use super::common::{ConfigArgs, Exit, Reported};
use tandem_engine::doctor::{Finding, examine};
use tandem_engine::runtime::Runtime;

/// Arguments of `tandem doctor`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The config, rules and store.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// One JSON document: `{"ok": bool, "findings": [{"check", "status", "message", "fix"}]}`.
    #[arg(long)]
    pub json: bool,
}

/// The findings as text: `ok       hubspot: reachable, …` or `problem  …` with its fix below.
pub fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!("{:<8} {}: {}\n", f.status, f.check, f.message));
        if let Some(fix) = &f.fix {
            out.push_str(&format!("         → {fix}\n"));
        }
    }
    let problems = findings.iter().filter(|f| f.is_problem()).count();
    let skipped = findings.iter().filter(|f| f.status == "skipped").count();
    if problems == 0 && skipped == 0 {
        out.push_str("\nall checks passed\n");
    } else if problems == 0 {
        out.push_str(&format!(
            "\nall checks passed; {skipped} could not run (see above)\n"
        ));
    } else {
        out.push_str(&format!(
            "\n{problems} finding{} to look at\n",
            if problems == 1 { "" } else { "s" }
        ));
    }
    out
}

/// Runs `tandem doctor`.
pub fn run(args: Args) -> Exit {
    super::common::block_on(async move {
        let rt = match Runtime::load(args.config.options()) {
            Ok(rt) => rt,
            Err(e) => return e.report(),
        };
        let findings = examine(&rt).await;
        let ok = !findings.iter().any(Finding::is_problem);
        let shown = if args.json {
            let doc = serde_json::json!({"ok": ok, "findings": findings});
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            )
        } else {
            text(&findings)
        };
        let _ = std::io::stdout().write_all(shown.as_bytes());
        if ok { Exit::Ok } else { Exit::Failures }
    })
}
