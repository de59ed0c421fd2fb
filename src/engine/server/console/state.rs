//! What the console's handlers share: the store, the running rules and their files, both
//! connectors, the sessions, a short-lived cache of the systems' live check, and the stop
//! token that ends live streams when `tandem serve` shuts down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::auth::Sessions;
use crate::connect::Systems;
use crate::reload::Reloader;
use crate::server::Rules;
use crate::store::Store;
use tandem_core::compile::Program;
use tandem_core::rules::Paths;
use tandem_core::rules::config::{Config, ConsoleUser};

/// How long a live check of the systems is reused before it is made again.
pub const STATUS_TTL: Duration = Duration::from_secs(20);

/// One system's live check.
#[derive(Debug, Clone)]
pub struct Checked {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// `connected`, `refused` (credentials) or `unreachable`.
    pub state: &'static str,
    /// What went wrong, in words (no secrets: connector errors never carry them).
    pub detail: Option<String>,
}

/// Both systems' live checks.
pub type Checks = Vec<(tandem_core::model::System, Checked)>;

/// Everything the console needs, shared by its handlers.
pub struct Console {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The rules in use (hot-reloaded under `tandem serve`).
    pub rules: Rules,
    /// The reloader, when the rules are watched: its config has the current users.
    pub reloader: Option<Arc<Reloader>>,
    /// Both connectors.
    pub systems: Systems,
    /// Where the config and rule files are.
    pub paths: Paths,
    /// The configuration at start.
    pub config: Config,
    /// Signed-in users.
    pub sessions: Sessions,
    /// Ends live streams (server-sent events) when the server shuts down.
    pub stop: CancellationToken,
    /// The last live check of each system (HubSpot, Accelo), and when it was made.
    pub checks: tokio::sync::Mutex<Option<(Instant, Checks)>>,
    /// Whether the server listens beyond loopback without TLS in front (a warning on pages).
    pub exposed: bool,
    /// The configuration as `tandem doctor` checks it (`None`: the check is not offered).
    pub doctor: Option<Arc<crate::runtime::Runtime>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("paths", &self.paths)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// A console over `store`, `rules` and `systems`, its users from `config` (and from the
    /// reloader's config once tandem.yaml changes).
    pub fn new(
        store: Arc<dyn Store>,
        rules: Rules,
        systems: Systems,
        paths: Paths,
        config: Config,
    ) -> Console {
        let reloader = match &rules {
            Rules::Watched(r) => Some(Arc::clone(r)),
            Rules::Fixed(_) => None,
        };
        let ttl = Duration::from_secs(config.console.session_hours.clamp(1, 24 * 30) * 3600);
        Console {
            store,
            rules,
            reloader,
            systems,
            paths,
            config,
            sessions: Sessions::new(ttl),
            stop: CancellationToken::new(),
            checks: tokio::sync::Mutex::new(None),
            exposed: false,
            doctor: None,
        }
    }

    /// The users who may sign in now.
    pub fn users(&self) -> Vec<ConsoleUser> {
        match &self.reloader {
            Some(r) => r.config().console.users.clone(),
            None => self.config.console.users.clone(),
        }
    }

    /// The rules in use now.
    pub fn program(&self) -> Arc<Program> {
        self.rules.current()
    }

    /// Whether session cookies are marked `Secure` regardless of the request.
    pub fn secure_cookies(&self) -> bool {
        self.config.console.secure_cookies
    }
}
