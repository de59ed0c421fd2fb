//! Where the config file and the rule files are, and reading them: [`Paths`] (from `--config`,
//! `--rules` and `TANDEM_CONFIG`), [`Source`] (one file's text), and the located
//! "cannot read" diagnostics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Code, Diagnostic, Report};

/// The default config file.
pub const DEFAULT_CONFIG: &str = "rules/tandem.yaml";
/// The environment variable that overrides the default config file.
pub const CONFIG_ENV: &str = "TANDEM_CONFIG";

/// Where the config file and the rule files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The config file.
    pub config: PathBuf,
    /// The directory whose `*.yaml`/`*.yml` files (except the config) are rule files.
    pub rules_dir: PathBuf,
}

impl Paths {
    /// `--config` (else `$TANDEM_CONFIG`, else `rules/tandem.yaml`) and `--rules` (else the
    /// config file's directory).
    pub fn resolve(config: Option<PathBuf>, rules: Option<PathBuf>) -> Paths {
        Paths::resolve_with(config, rules, |k| std::env::var(k).ok())
    }

    /// [`Paths::resolve`] with an explicit environment (for tests).
    pub fn resolve_with(
        config: Option<PathBuf>,
        rules: Option<PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Paths {
        let config = config
            .or_else(|| env(CONFIG_ENV).filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
        let rules_dir = rules.unwrap_or_else(|| match config.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        });
        Paths { config, rules_dir }
    }

    /// The rule files, sorted by name.
    pub fn rule_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let config_canon = std::fs::canonicalize(&self.config).ok();
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.rules_dir)? {
            let path = entry?.path();
            let is_yaml = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            if !is_yaml || !path.is_file() {
                continue;
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            if stem == "tandem" {
                continue;
            }
            if config_canon.is_some() && std::fs::canonicalize(&path).ok() == config_canon {
                continue;
            }
            out.push(path);
        }
        out.sort();
        Ok(out)
    }
}

/// One file's text and display name.
#[derive(Debug, Clone)]
pub struct Source {
    /// As displayed in diagnostics.
    pub name: String,
    /// Content.
    pub text: Arc<str>,
}

/// Reads the config file and every rule file under `paths`; what cannot be read is reported.
/// Reads the config file and every rule file: (config, rule files, the rules directory as
/// displayed); what cannot be read is a diagnostic in `report`.
pub fn read(paths: &Paths, report: &mut Report) -> (Option<Source>, Vec<Source>, String) {
    let config = read_one(&paths.config, "config file", report);
    let dir_name = display(&paths.rules_dir);
    let mut sources = Vec::new();
    match paths.rule_files() {
        Ok(files) => {
            for f in files {
                sources.extend(read_one(&f, "rule file", report));
            }
        }
        Err(e) => report.push(Diagnostic::whole(
            Code::Unreadable,
            &dir_name,
            format!("cannot read the rules directory: {}", io_reason(&e)),
        )),
    }
    (config, sources, dir_name)
}

/// Reads one file (`what` names it in the diagnostic).
pub(crate) fn read_one(path: &Path, what: &str, report: &mut Report) -> Option<Source> {
    let name = display(path);
    match std::fs::read_to_string(path) {
        Ok(text) => Some(Source {
            name,
            text: Arc::from(text),
        }),
        Err(e) => {
            report.push(Diagnostic::whole(
                Code::Unreadable,
                &name,
                format!("cannot read the {what}: {}", io_reason(&e)),
            ));
            None
        }
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::InvalidData => "not UTF-8 text".into(),
        _ => e.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_default_from_env_then_file() {
        let p = Paths::resolve_with(None, None, |_| None);
        assert_eq!(p.config, PathBuf::from("rules/tandem.yaml"));
        assert_eq!(p.rules_dir, PathBuf::from("rules"));
        let p = Paths::resolve_with(None, None, |k| {
            (k == CONFIG_ENV).then(|| "/etc/tandem/tandem.yaml".to_string())
        });
        assert_eq!(p.rules_dir, PathBuf::from("/etc/tandem"));
        let p = Paths::resolve_with(Some("x.yaml".into()), Some("r".into()), |_| None);
        assert_eq!(
            (p.config, p.rules_dir),
            (PathBuf::from("x.yaml"), PathBuf::from("r"))
        );
        let p = Paths::resolve_with(Some("x.yaml".into()), None, |_| None);
        assert_eq!(p.rules_dir, PathBuf::from("."));
    }
}
