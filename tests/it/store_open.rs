//! Opening stores: URL forms, directories created, WAL, data kept across reopen, clear errors
//! that never show a password.

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::Connection;
use tandem_core::model::{Link, Object, System};
use tandem_engine::store::testing::TestStore;
use tandem_engine::store::{Backend, OpenOptions, StoreError};

use crate::support::closed_port;

#[tokio::test]
async fn a_sqlite_store_is_created_with_its_directories_and_reopened_intact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/deeper/tandem.db");
    let url = format!("sqlite://{}", path.display());
    let store = tandem_engine::store::open(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert_eq!(store.location(), path.display().to_string());
    let link = Link {
        object: Object::Company,
        hubspot_id: "1".into(),
        accelo_id: "2".into(),
        affiliation_id: None,
        last_synced: BTreeMap::from([("name".into(), "Acme".into())]),
    };
    store.upsert_link(&link).await.unwrap();
    store.close().await;

    // Reopen by plain path: migrations are not re-run, the data is there.
    let store = tandem_engine::store::open(path.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        store
            .link(Object::Company, System::HubSpot, "1")
            .await
            .unwrap(),
        Some(link)
    );
    store.close().await;

    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let migrations: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // Every migration ran.
    let files = std::fs::read_dir("src/engine/store/migrations/sqlite")
        .unwrap()
        .count();
    assert_eq!(migrations, files as i64);
}

#[tokio::test]
async fn a_missing_store_is_an_error_when_creating_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope/tandem.db");
    let err = tandem_engine::store::open_with(
        path.to_str().unwrap(),
        &OpenOptions {
            create: false,
            ..OpenOptions::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }));
    assert_eq!(
        err.to_string(),
        format!("there is no store at `{}`", path.display())
    );
    assert!(!path.parent().unwrap().exists(), "nothing was created");
}

#[tokio::test]
async fn a_store_path_that_cannot_be_created_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let path = file.join("tandem.db");
    let err = tandem_engine::store::open(path.to_str().unwrap())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot open the store at `{}`", path.display())),
        "{text}"
    );
    assert!(
        !err.is_unreachable(),
        "a local path problem, not an unreachable server"
    );
    let empty = tandem_engine::store::open("  ").await.unwrap_err();
    assert_eq!(
        empty.to_string(),
        "cannot open the store at ``: the store location is empty"
    );
}

#[tokio::test]
async fn a_postgres_password_never_appears_in_errors() {
    // Nothing listens on the port: the connection fails.
    let port = closed_port();
    let url = format!("postgres://tandem:Sup3rS3cretPw@127.0.0.1:{port}/sync");
    let err = tandem_engine::store::open(&url).await.unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains("Sup3rS3cretPw"), "{text}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot connect to the store at `postgres://tandem:[redacted]@127.0.0.1:{port}/sync`"
        )),
        "{err}"
    );
    assert!(err.is_unreachable());
}

#[tokio::test]
async fn a_postgres_store_migrates_its_schema_and_reopens() {
    let ts = TestStore::postgres().await;
    assert_eq!(ts.store.backend(), Backend::Postgres);
    ts.store.set_cursor("c", "1").await.unwrap();
    // The URL form a user gives `--store` (schema through `options`) opens the same store.
    let again = tandem_engine::store::open(&ts.url).await.unwrap();
    assert_eq!(again.cursor("c").await.unwrap().as_deref(), Some("1"));
    again.close().await;
    ts.cleanup().await;
}

#[tokio::test]
async fn a_store_from_a_newer_tandem_is_refused_not_misread() {
    let ts = TestStore::sqlite().await;
    ts.store.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", ts.url))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', true, x'00', 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let err = tandem_engine::store::open(&ts.url).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot open the store at `{}`: cannot migrate the schema: ",
            ts.url
        )),
        "{text}"
    );
    assert!(text.contains("99990101000000"), "{text}");
    ts.cleanup().await;
}

#[tokio::test]
async fn a_test_store_dropped_without_cleanup_leaves_nothing_behind() {
    let ts = TestStore::sqlite().await;
    let dir = Path::new(&ts.url).parent().unwrap().to_path_buf();
    assert!(dir.exists());
    drop(ts);
    assert!(!dir.exists());

    let ts = TestStore::postgres().await;
    let schema = ts.url.rsplit("search_path%3D").next().unwrap().to_string();
    let base = tandem_engine::store::testing::postgres_url();
    let count = || async {
        let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1")
            .bind(&schema)
            .fetch_one(&mut c)
            .await
            .unwrap();
        n
    };
    assert_eq!(count().await, 1);
    drop(ts);
    assert_eq!(count().await, 0);
}

/// Several processes opening one new SQLite file at the same moment (a serve and a worker
/// started together, a command and `tandem log --follow`) all get the migrated store: the one
/// that loses the race on the first migration tries again instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_sqlite_file_opened_at_once_by_many_is_migrated_once() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tandem.db").display().to_string();
        let opens: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { tandem_engine::store::open(&path).await })
            })
            .collect();
        for o in opens {
            let store = o
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(store.jobs(&Default::default()).await.is_ok());
        }
    }
}
