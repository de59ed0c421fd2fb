//! The executor and the job runner: turns a [`Plan`](tandem_core::plan::Plan) into writes on the
//! target system, durably, and runs every manual and automatic sync as a job of the store's
//! queue.
//!
//! - [`executor`] — [`Executor::execute`]: a plan in dependency order (companies, then contacts),
//!   HubSpot writes in batches of the connector's batch size, Accelo writes one by one with
//!   bounded concurrency; each record's outcome (link + log entry + intent resolution) is written
//!   as it happens in one store transaction; create intents before every create (B20); echoes of
//!   every written value (B17); guardrails before the first write (B21).
//! - [`recover`] — settling the open create intents a crash left behind, before anything is
//!   created again.
//! - [`guardrails`] — the B21 thresholds.
//! - [`cost`] — what a plan costs in requests to its target and how long its budget makes it
//!   take, said before the first write.
//! - [`progress`] — progress to a terminal (indicatif bar on a TTY, plain lines otherwise).
//! - [`worker`] — [`Worker`]: claims jobs under short leases with heartbeats, dispatches them by
//!   kind to a [`JobHandler`], writes the run's start and end to the sync log, finishes or
//!   releases the job, and sends the push-completion email.
//! - [`waits`] — [`waits::WaitLog`]: each long wait on a system's budget that begins during a
//!   job becomes one notice in that job's sync log.
//! - [`jobs`] — the handlers of the manual runs (`pull`, `push`, `push_company`,
//!   `push_contact`, `apply`).
//!
//! Invariants: nothing is written to a remote system before the guardrails passed; no create is
//! sent without an open intent; a record's link change, intent resolution and log entry are one
//! transaction; a run that loses its lease stops writing at the next record.

pub mod cost;
mod error;
pub mod executor;
pub mod guardrails;
pub mod jobs;
pub mod owner;
pub mod progress;
pub mod recover;
pub mod waits;
pub mod worker;

pub use error::ExecError;
pub use executor::{ExecOptions, Executor, JobLease, Report, RunContext};
pub use guardrails::Breach;
pub use progress::{Progress, ProgressMode};
pub use worker::{Finished, JobHandler, JobRun, RunSummary, Worker};
