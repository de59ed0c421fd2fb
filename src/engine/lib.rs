//! Tandem's engine: everything that talks to the outside world, on top of [`tandem_core`].
//!
//! - [`connect`] — the HubSpot and Accelo API clients behind one `Connector` trait;
//! - [`store`] — links, the job queue, the sync log, intents, echoes, cursors and events, on
//!   SQLite or PostgreSQL;
//! - [`snapshot`] — reading what a plan is made from;
//! - [`exec`] — applying plans, as jobs run by workers;
//! - [`explain`] — one record's story (why it syncs or not), for `tandem why` and the console;
//! - [`server`] — webhooks, the poller, the HTTP endpoints of `tandem serve`;
//! - [`notify`] — the push-completion email;
//! - [`reload`] — watching the rules and swapping the running program;
//! - [`runtime`] — building all of it from `tandem.yaml` and the environment;
//! - [`doctor`] — checking a configuration against the real systems.

pub mod connect;
pub mod doctor;
pub mod exec;
pub mod explain;
pub mod notify;
pub mod reload;
pub mod runtime;
pub mod server;
pub mod snapshot;
pub mod store;
