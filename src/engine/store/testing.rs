//! Test support: fresh stores on both backends, so that every store test — and any other
//! module's test that needs a store — runs against SQLite and PostgreSQL alike.
//!
//! SQLite stores live in a fresh temporary directory; PostgreSQL stores in a fresh, uniquely
//! named schema of the database at `TANDEM_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped by [`TestStore::cleanup`]. PostgreSQL is
//! required: when it cannot be reached the test fails, it is never skipped.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt;

use super::api::{OpenOptions, Store};
use super::postgres::PgStore;

/// The environment variable naming the PostgreSQL database tests use.
pub const POSTGRES_URL_ENV: &str = "TANDEM_TEST_POSTGRES_URL";

/// The database tests use when the variable is not set (trust auth on loopback, as on CI).
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The PostgreSQL database tests use.
pub fn postgres_url() -> String {
    std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string())
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name no other test (in this or another process) is using.
fn unique_name(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{n}_{nanos:x}", std::process::id())
}

enum Cleanup {
    Dir(PathBuf),
    Schema { url: String, schema: String },
    Done,
}

/// A store made for one test.
pub struct TestStore {
    /// The store.
    pub store: Arc<dyn Store>,
    /// A URL that opens the same store from another process (e.g. `tandem log --store`).
    pub url: String,
    cleanup: Cleanup,
}

impl TestStore {
    /// A store in a new SQLite file in a new temporary directory.
    pub async fn sqlite() -> TestStore {
        let dir = std::env::temp_dir().join(unique_name("tandem_test"));
        let path = dir.join("tandem.db");
        let url = path.display().to_string();
        let store = super::open(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot create a SQLite test store: {e}"));
        TestStore {
            store,
            url,
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// A store in a new schema of the test PostgreSQL database. Panics when PostgreSQL cannot
    /// be reached.
    pub async fn postgres() -> TestStore {
        let base = postgres_url();
        let schema = unique_name("tandem_test");
        let store = PgStore::open_in_schema(
            &base,
            &schema,
            &OpenOptions {
                max_connections: Some(4),
                ..OpenOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for the store tests and could not be used ({e}); \
                 start it or point {POSTGRES_URL_ENV} at a database"
            )
        });
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        TestStore {
            store: Arc::new(store),
            url,
            cleanup: Cleanup::Schema { url: base, schema },
        }
    }

    /// Closes the store and removes its file or schema.
    pub async fn cleanup(mut self) {
        self.store.close().await;
        match std::mem::replace(&mut self.cleanup, Cleanup::Done) {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { url, schema } => {
                if let Err(e) = PgStore::drop_schema(&url, &schema).await {
                    eprintln!("could not drop test schema `{schema}`: {e}");
                }
            }
            Cleanup::Done => {}
        }
    }
}

/// A test that panicked before [`TestStore::cleanup`] still leaves nothing behind: the
/// directory is removed here, the schema dropped from a thread of its own (this one may be
/// inside an async runtime).
impl Drop for TestStore {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.cleanup, Cleanup::Done) {
            Cleanup::Done => {}
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Schema { url, schema } => {
                let dropper = std::thread::spawn(move || {
                    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    else {
                        return;
                    };
                    if let Err(e) = rt.block_on(PgStore::drop_schema(&url, &schema)) {
                        eprintln!("could not drop test schema `{schema}`: {e}");
                    }
                });
                let _ = dropper.join();
            }
        }
    }
}

/// Runs `test` against a fresh SQLite store, then against a fresh PostgreSQL store, cleaning
/// each up afterwards even when the test panics (the panic is then re-raised, naming the
/// backend).
pub async fn for_each_store<F, Fut>(test: F)
where
    F: Fn(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    for pg in [false, true] {
        let ts = if pg {
            TestStore::postgres().await
        } else {
            TestStore::sqlite().await
        };
        let backend = ts.store.backend();
        let result = AssertUnwindSafe(test(ts.store.clone()))
            .catch_unwind()
            .await;
        ts.cleanup().await;
        if let Err(panic) = result {
            eprintln!("the test above failed on the {backend} store");
            std::panic::resume_unwind(panic);
        }
    }
}
