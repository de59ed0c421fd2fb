//! [`ExecError`]: why a run stopped before handling every action.

use super::guardrails::Breach;
use crate::connect::ConnectError;
use crate::store::StoreError;

/// Why a run stopped before handling every action.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ExecError {
    /// A guardrail (B21) would be exceeded; nothing was written.
    #[error("{0}")]
    #[diagnostic(
        code(tandem::exec::guardrail),
        help(
            "check the plan with `tandem plan`; if it is right, run again with `--force` or \
             raise `sync.guardrails` in tandem.yaml"
        )
    )]
    Guardrail(Breach),
    /// A remote system could not be reached, refused the credentials or stayed unavailable.
    #[error("stopped: {0}")]
    #[diagnostic(code(tandem::exec::unreachable))]
    Unreachable(ConnectError),
    /// The store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
    /// The run was cancelled, or its job's lease was lost (another worker took it over); it
    /// stopped between two records.
    #[error("interrupted: {0}")]
    #[diagnostic(code(tandem::exec::interrupted))]
    Interrupted(String),
}

impl ExecError {
    /// True when the remote system (or the store's database) is unreachable: exit code 3.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ExecError::Unreachable(_) => true,
            ExecError::Store(e) => e.is_unreachable(),
            _ => false,
        }
    }
}
