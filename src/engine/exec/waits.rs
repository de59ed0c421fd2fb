//! The sync log's word on a budget wait: while a job runs, each long wait on a system's budget
//! that begins ([`BudgetWait`], reported by the connectors' rate limiters) becomes one `notice`
//! entry of that job — "waiting for accelo's hourly budget, resumes at 15:02:10 UTC (in 58 min)"
//! — so that `tandem log --follow` says why nothing moves. The connectors only report the wait;
//! this module, on the job's side, writes it to the store.

use tandem_core::model::System;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::executor::Executor;
use crate::connect::BudgetWait;
use crate::store::{JobId, LogBody, NewLogEntry, Notice, NoticeLevel, Store};

/// Logs the budget waits of both systems under `job` while it lives; stops when dropped.
#[derive(Debug)]
pub struct WaitLog {
    task: Option<JoinHandle<()>>,
}

impl WaitLog {
    /// Starts listening to the waits of the executor's connectors for `job`.
    pub fn start(exec: &Executor, job: JobId) -> WaitLog {
        let receivers: Vec<_> = [System::HubSpot, System::Accelo]
            .into_iter()
            .filter_map(|s| exec.connector(s).budget_waits())
            .collect();
        if receivers.is_empty() {
            return WaitLog { task: None };
        }
        let store = exec.store().clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<BudgetWait>();
        let mut tasks = tokio::task::JoinSet::new();
        for mut r in receivers {
            let tx = tx.clone();
            tasks.spawn(async move {
                loop {
                    match r.recv().await {
                        Ok(w) => {
                            if tx.send(w).is_err() {
                                return;
                            }
                        }
                        Err(RecvError::Lagged(_)) => continue,
                        Err(RecvError::Closed) => return,
                    }
                }
            });
        }
        drop(tx);
        let task = tokio::spawn(async move {
            let _forwarders = tasks;
            while let Some(w) = rx.recv().await {
                log(store.as_ref(), job, &w).await;
            }
        });
        WaitLog { task: Some(task) }
    }
}

impl Drop for WaitLog {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn log(store: &dyn Store, job: JobId, wait: &BudgetWait) {
    let entry = NewLogEntry {
        job: Some(job),
        body: LogBody::Notice(Notice {
            level: NoticeLevel::Info,
            message: wait.message(),
        }),
    };
    if let Err(e) = store.append_log(&entry).await {
        tracing::warn!(error = %e, job = %job, "could not log a budget wait");
    }
}
