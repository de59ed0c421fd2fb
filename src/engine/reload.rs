//! Hot reload: watch the rule files, rebuild on change, and swap the running [`Program`] and
//! its [`Config`] only when the whole set (config + every rule file) is valid.
//!
//! The parent directories are watched (not the files), because editors save by writing a
//! temporary file and renaming it over the original; the debouncer (notify-debouncer-full)
//! merges the burst of events a save produces. After the debounce the set is read, checked and
//! compiled again; a valid result is swapped in and announced, an invalid one leaves the
//! running set in place and is announced (and logged) with its diagnostics.
//!
//! The program and the config live together in one [`Running`] behind one [`ArcSwap`], so a
//! reader never sees the program of one load with the config of another
//! ([`Reloader::running`]). A change is a change of meaning: a new rules hash, or a config that
//! parses to different values. Saving unchanged content (or only comments and formatting)
//! stores and announces nothing; a config-only edit is announced like a rules edit, saying
//! which of the two changed.
//!
//! Rebuilding runs on the watcher's own thread: no async runtime is needed, and subscribers use
//! a `tokio::sync::watch` channel to wait for the next [`ReloadEvent`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify_debouncer_full::notify::event::{AccessKind, AccessMode};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use thiserror::Error;
use tokio::sync::watch;

use tandem_core::compile::{Program, load};
use tandem_core::rules::config::Config;
use tandem_core::rules::{Paths, Report};

/// Rule reloads, by `outcome` (`reloaded`, or `rejected`: the new files were invalid and the
/// previous rules keep running).
pub const RELOADS: &str = "tandem_reloads_total";

/// Default debounce: long enough to merge an editor's save, short enough to feel immediate.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(250);

/// What happened at a reload.
#[derive(Debug, Clone)]
pub enum ReloadOutcome {
    /// The program the reloader started with.
    Started {
        /// Its rules hash.
        rules_hash: String,
    },
    /// A new valid set is running (or, after a rejection, the files are valid again).
    Reloaded {
        /// The rules hash now running.
        rules_hash: String,
        /// Warnings of the new set.
        warnings: Report,
        /// The rules changed meaning (a new hash).
        rules_changed: bool,
        /// `tandem.yaml` changed values. [`Reloader::config`] gives the new config at once;
        /// components that read their settings at start-up (today: all of `tandem serve`'s)
        /// apply it at the next start.
        config_changed: bool,
    },
    /// The files changed but are invalid; the previous program keeps running.
    Rejected {
        /// Every problem found.
        report: Report,
    },
}

/// One announcement; `generation` increases by one each time.
#[derive(Debug, Clone)]
pub struct ReloadEvent {
    /// 0 for the start, then 1, 2, …
    pub generation: u64,
    /// What happened.
    pub outcome: ReloadOutcome,
}

/// Why the reloader could not start.
#[derive(Debug, Error, miette::Diagnostic)]
pub enum ReloadError {
    /// The initial rule set is invalid.
    #[error("the rules are invalid: {}", .0.summary())]
    #[diagnostic(code(tandem::reload::invalid))]
    Invalid(Report),
    /// The directories could not be watched.
    #[error("cannot watch `{path}`: {message}")]
    #[diagnostic(code(tandem::reload::watch))]
    Watch {
        /// The directory.
        path: String,
        /// The watcher's error.
        message: String,
    },
}

/// The program running now and the configuration loaded with it: always from the same load.
#[derive(Debug, Clone)]
pub struct Running {
    /// The compiled rules.
    pub program: Arc<Program>,
    /// The configuration.
    pub config: Arc<Config>,
}

struct Inner {
    paths: Paths,
    /// Swapped as one: a reader never pairs one load's program with another's config.
    running: ArcSwap<Running>,
    tx: watch::Sender<ReloadEvent>,
    /// (generation, whether the last outcome was a rejection).
    state: Mutex<(u64, bool)>,
}

impl Inner {
    fn rebuild(&self) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        match load(&self.paths) {
            Ok(loaded) => {
                let before = self.running.load_full();
                let rules_changed = loaded.program.rules_hash() != before.program.rules_hash();
                let config_changed = loaded.config != *before.config;
                if !rules_changed && !config_changed && !state.1 {
                    // Saved without a change in meaning: nothing to store or announce.
                    return;
                }
                let hash = loaded.program.rules_hash().to_string();
                // Unchanged halves keep their `Arc`, so readers can tell nothing moved.
                self.running.store(Arc::new(Running {
                    program: if rules_changed {
                        loaded.program
                    } else {
                        Arc::clone(&before.program)
                    },
                    config: if config_changed {
                        Arc::new(loaded.config)
                    } else {
                        Arc::clone(&before.config)
                    },
                }));
                state.0 += 1;
                state.1 = false;
                metrics::counter!(RELOADS, "outcome" => "reloaded").increment(1);
                tracing::info!(
                    target: "tandem::reload",
                    rules_hash = %hash,
                    rules_changed,
                    config_changed,
                    "rules reloaded"
                );
                self.tx.send_replace(ReloadEvent {
                    generation: state.0,
                    outcome: ReloadOutcome::Reloaded {
                        rules_hash: hash,
                        warnings: loaded.report,
                        rules_changed,
                        config_changed,
                    },
                });
            }
            Err(report) => {
                state.0 += 1;
                state.1 = true;
                metrics::counter!(RELOADS, "outcome" => "rejected").increment(1);
                tracing::warn!(
                    target: "tandem::reload",
                    "rules changed but are invalid ({}); the previous rules keep running",
                    report.summary()
                );
                for d in report.diagnostics() {
                    let (line, col) = report.position(d);
                    tracing::warn!(
                        target: "tandem::reload",
                        "{}:{line}:{col}: {} {}",
                        d.file,
                        d.code,
                        d.message
                    );
                }
                self.tx.send_replace(ReloadEvent {
                    generation: state.0,
                    outcome: ReloadOutcome::Rejected { report },
                });
            }
        }
    }
}

/// A running hot-reloader. Dropping it stops the watch.
pub struct Reloader {
    inner: Arc<Inner>,
    rx: watch::Receiver<ReloadEvent>,
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("paths", &self.inner.paths)
            .finish_non_exhaustive()
    }
}

fn watched_dirs(paths: &Paths) -> Vec<PathBuf> {
    let mut dirs = vec![paths.rules_dir.clone()];
    let config_dir = match paths.config.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canon(&config_dir) != canon(&paths.rules_dir) {
        dirs.push(config_dir);
    }
    dirs
}

fn relevant(paths: &Paths, path: &Path) -> bool {
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    yaml || path.file_name() == paths.config.file_name()
}

impl Reloader {
    /// Loads the rule set under `paths` (it must be valid) and starts watching it.
    pub fn spawn(paths: Paths) -> Result<Reloader, ReloadError> {
        Reloader::spawn_with(paths, DEFAULT_DEBOUNCE)
    }

    /// [`Reloader::spawn`] with an explicit debounce.
    pub fn spawn_with(paths: Paths, debounce: Duration) -> Result<Reloader, ReloadError> {
        let loaded = load(&paths).map_err(ReloadError::Invalid)?;
        let (tx, rx) = watch::channel(ReloadEvent {
            generation: 0,
            outcome: ReloadOutcome::Started {
                rules_hash: loaded.program.rules_hash().to_string(),
            },
        });
        let inner = Arc::new(Inner {
            paths: paths.clone(),
            running: ArcSwap::new(Arc::new(Running {
                program: loaded.program,
                config: Arc::new(loaded.config),
            })),
            tx,
            state: Mutex::new((0, false)),
        });
        let handler_inner = Arc::clone(&inner);
        let handler = move |result: DebounceEventResult| match result {
            Ok(events) => {
                let touched = events.iter().any(|e| {
                    let ignored = matches!(e.kind, EventKind::Access(kind)
                        if kind != AccessKind::Close(AccessMode::Write));
                    !ignored && e.paths.iter().any(|p| relevant(&handler_inner.paths, p))
                });
                if touched {
                    handler_inner.rebuild();
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!(target: "tandem::reload", "file watcher error: {e}");
                }
            }
        };
        let mut debouncer =
            new_debouncer(debounce, None, handler).map_err(|e| ReloadError::Watch {
                path: paths.rules_dir.display().to_string(),
                message: e.to_string(),
            })?;
        for dir in watched_dirs(&paths) {
            debouncer
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|e| ReloadError::Watch {
                    path: dir.display().to_string(),
                    message: e.to_string(),
                })?;
        }
        Ok(Reloader {
            inner,
            rx,
            _debouncer: debouncer,
        })
    }

    /// The program running now.
    pub fn current(&self) -> Arc<Program> {
        Arc::clone(&self.inner.running.load().program)
    }

    /// The configuration running now. To read it together with the program, use
    /// [`Reloader::running`]: two calls may straddle a reload.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.inner.running.load().config)
    }

    /// The program and the config running now, from the same load.
    pub fn running(&self) -> Arc<Running> {
        self.inner.running.load_full()
    }

    /// A receiver of reload announcements (`changed().await`, `wait_for(..)`).
    pub fn subscribe(&self) -> watch::Receiver<ReloadEvent> {
        self.rx.clone()
    }

    /// Rebuilds now, without waiting for a file event (e.g. on SIGHUP).
    pub fn reload_now(&self) {
        self.inner.rebuild();
    }

    /// The paths being watched.
    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }
}
