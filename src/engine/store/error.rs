//! [`StoreError`]: everything that can go wrong in the store.

use tandem_core::model::Object;

use super::types::JobId;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum StoreError {
    /// The store could not be opened, created or migrated (a bad path or URL, a file that
    /// cannot be created, a schema from a newer Tandem).
    #[error("cannot open the store at `{location}`: {message}")]
    #[diagnostic(
        code(tandem::store::open),
        help("set the store with `--store`, `TANDEM_STORE` or `store.url` in tandem.yaml")
    )]
    Open {
        /// The store's location, with any password removed.
        location: String,
        /// What went wrong, with any password removed.
        message: String,
    },
    /// The database server could not be reached or refused the connection.
    #[error("cannot connect to the store at `{location}`: {message}")]
    #[diagnostic(
        code(tandem::store::connect),
        help("check that the database is running and that the URL and credentials are right")
    )]
    Connect {
        /// The store's URL, with any password removed.
        location: String,
        /// What went wrong, with any password removed.
        message: String,
    },
    /// The SQLite file does not exist and the caller asked not to create it.
    #[error("there is no store at `{location}`")]
    #[diagnostic(
        code(tandem::store::missing),
        help("run `tandem pull` or `tandem push` first, or point `--store` at an existing store")
    )]
    Missing {
        /// The path that was looked at.
        location: String,
    },
    /// A statement failed.
    #[error("store error while {op}: {source}")]
    #[diagnostic(code(tandem::store::query))]
    Query {
        /// What the store was doing.
        op: &'static str,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
    /// A value read from the store is not what this version of Tandem wrote.
    #[error("the store holds an unreadable value: {0}")]
    #[diagnostic(code(tandem::store::corrupt))]
    Corrupt(String),
    /// A link would pair a record that is already linked to another record.
    #[error("cannot link {object} hubspot `{hubspot_id}` ↔ accelo `{accelo_id}`: {existing}")]
    #[diagnostic(code(tandem::store::link_conflict))]
    LinkConflict {
        /// Company or contact.
        object: Object,
        /// The HubSpot id of the rejected link.
        hubspot_id: String,
        /// The Accelo id of the rejected link.
        accelo_id: String,
        /// The link that is in the way, in words.
        existing: String,
    },
    /// The job does not exist.
    #[error("there is no job `{0}`")]
    #[diagnostic(code(tandem::store::no_job))]
    NoSuchJob(JobId),
    /// The worker no longer holds the job's lease (it expired and another worker claimed the
    /// job, or the job was cancelled or finished). The worker must stop working on it.
    #[error("job `{job}` is no longer leased to `{owner}` (it is {state})")]
    #[diagnostic(code(tandem::store::lease_lost))]
    LeaseLost {
        /// The job.
        job: JobId,
        /// The worker that thought it held the lease.
        owner: String,
        /// What the job is now, in words (`cancelled`, `running under worker-b`, …).
        state: String,
    },
    /// The caller passed something the store cannot accept.
    #[error("invalid store request: {0}")]
    #[diagnostic(code(tandem::store::invalid))]
    Invalid(String),
}

impl StoreError {
    /// True when the database aborted the transaction only to break a deadlock or because it
    /// could not serialise it (PostgreSQL SQLSTATE 40P01 and 40001): running it again is right,
    /// and the store does so itself.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Query { source, .. } => source
                .as_database_error()
                .and_then(|d| d.code())
                .is_some_and(|code| code == "40P01" || code == "40001"),
            _ => false,
        }
    }

    /// True when the error means the database could not be reached (as opposed to bad data or
    /// a bad request): the CLI maps it to exit code 3.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::Query { source, .. } => matches!(
                source,
                sqlx::Error::Io(_)
                    | sqlx::Error::Tls(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
            ),
            _ => false,
        }
    }
}
