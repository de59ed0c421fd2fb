//! Tandem's integration tests, in one test binary (`[[test]] name = "it"` in Cargo.toml): one
//! module per file, named after the area it tests, and the helpers they share in [`support`].
//! One binary links once, where one binary per file linked thirty-eight times.
//!
//! Run one area or one file by its module path, e.g. `cargo test --test it serve_` or
//! `cargo test --test it exec_executor`; one test by its full path, e.g.
//! `cargo test --test it -- --exact plan_golden::bulk_pull`. The tests run with the workspace
//! root as their working directory (fixtures are `tests/fixtures/...`); the ones that run the
//! real binary find it through `CARGO_BIN_EXE_tandem`. `tests/store_crash.rs` stays a binary of
//! its own: it has its own `main` and runs itself as the writer it kills.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed unwrap or expect is a failed test"
)]

mod support;

// The browser and schemathesis test support, checked on pages and APIs of its own.
mod browser_harness;

// The browser console: end to end in headless Chromium.
mod console_browser;

// The `tandem` command as a process or through its command functions, and the console API.
mod cli_demo;
mod cli_first_hour;
mod cli_links;
mod cli_sync;
mod console_api;
mod log_cli;

// Connectors against the simulators.
mod connect_sandbox;

// Executing plans, jobs and crash safety.
mod campaign_faults;
mod campaign_rhai;
mod campaign_secrets;
mod exec_crash;
mod exec_executor;
mod exec_worker;

// Notifications.
mod notify_email;

// Planning.
mod plan_cli;
mod plan_golden;
mod plan_read;

// The rules language and its commands.
mod customer_text;
mod deploy_files;
mod doctor;
mod rules_check;
mod rules_cli;
mod rules_docs;
mod rules_fuzz;
mod rules_plan;
mod rules_reload;
mod rules_schema;
mod rules_test;

// The simulators.
mod sandbox_accelo;
mod sandbox_cli;
mod sandbox_core;
mod sandbox_docs;
mod sandbox_hubspot;
mod sandbox_mail;
mod sandbox_python;
mod sandbox_webhooks;

// `tandem serve`: webhooks, poller, worker, hot reload.
mod serve_binary;
mod serve_crash;
mod serve_limits;
mod serve_loop;
mod serve_poll;
mod serve_reload;
mod serve_sync;
mod serve_webhooks;
mod serve_worker;

// The store on SQLite and PostgreSQL (the crash test is `tests/store_crash.rs`).
mod store_concurrency;
mod store_events;
mod store_jobs;
mod store_links;
mod store_log;
mod store_open;
