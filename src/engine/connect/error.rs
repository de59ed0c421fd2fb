//! `ConnectError`: everything that can go wrong talking to HubSpot or Accelo, split so that the
//! command line can tell "the system is unreachable or refused the credentials" (exit 3) from
//! a failure of one record (exit 1 at the end of the run).
//!
//! Messages never carry a secret: requests are named by method and path (no query string, no
//! headers), and remote error texts are the systems' own messages.

use tandem_core::model::{Object, System};

/// A connector failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error, miette::Diagnostic)]
pub enum ConnectError {
    /// No connection could be made (refused, DNS, TLS, timeouts on idempotent reads after every
    /// retry).
    #[error("cannot reach {system} at `{url}`: {reason}")]
    #[diagnostic(
        code(tandem::connect::unreachable),
        help(
            "check the {system} URL in `tandem.yaml` (or its environment override) and that the service is up"
        )
    )]
    Unreachable {
        /// The system.
        system: System,
        /// The base URL tried.
        url: String,
        /// What failed.
        reason: String,
    },

    /// The system refused the credentials (401/403, or the token endpoint refused the grant).
    #[error("{system} refused the credentials ({status}): {message}")]
    #[diagnostic(
        code(tandem::connect::credentials),
        help("check the {system} token or client id/secret and the app's scopes")
    )]
    Credentials {
        /// The system.
        system: System,
        /// The HTTP status.
        status: u16,
        /// The system's message.
        message: String,
    },

    /// The system kept answering 429 / 423 / 5xx after every retry.
    #[error("{system} kept answering {status} to `{request}` after {attempts} attempts")]
    #[diagnostic(code(tandem::connect::unavailable))]
    Unavailable {
        /// The system.
        system: System,
        /// Method and path.
        request: String,
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },

    /// The system refused this request (4xx): invalid value, duplicate, unknown property, …
    #[error("{system} refused `{request}` ({status} {category}): {message}")]
    #[diagnostic(code(tandem::connect::rejected))]
    Rejected {
        /// The system.
        system: System,
        /// Method and path.
        request: String,
        /// The HTTP status.
        status: u16,
        /// HubSpot's `category` / Accelo's `meta.status`.
        category: String,
        /// The system's message.
        message: String,
    },

    /// A create got no answer (timeout, dropped connection, 5xx) and could not be settled by a
    /// lookup (none was given); it was not repeated, to avoid a duplicate.
    #[error(
        "{system} gave no usable answer to `{request}` ({reason}); whether it was applied is unknown"
    )]
    #[diagnostic(
        code(tandem::connect::outcome_unknown),
        help(
            "give the create a lookup (a dedup key) so it can be settled by looking the record up"
        )
    )]
    OutcomeUnknown {
        /// The system.
        system: System,
        /// Method and path.
        request: String,
        /// What happened.
        reason: String,
    },

    /// The answer did not have the documented shape.
    #[error("{system} answered `{request}` with an unexpected response: {message}")]
    #[diagnostic(code(tandem::connect::protocol))]
    Protocol {
        /// The system.
        system: System,
        /// Method and path.
        request: String,
        /// What was wrong.
        message: String,
    },

    /// The caller asked for something the connector cannot do (an unknown write key, a contact
    /// without a company on Accelo, …).
    #[error("{system}: {message}")]
    #[diagnostic(code(tandem::connect::invalid))]
    Invalid {
        /// The system.
        system: System,
        /// What was wrong.
        message: String,
    },

    /// The record does not exist.
    #[error("{system} {object} `{id}` does not exist")]
    #[diagnostic(code(tandem::connect::not_found))]
    NotFound {
        /// The system.
        system: System,
        /// The object.
        object: Object,
        /// The id asked for.
        id: String,
    },
}

impl ConnectError {
    /// True for failures that mean the system as a whole is unusable: it cannot be reached,
    /// refuses the credentials, or stays unavailable. The command line maps these to exit 3; the
    /// executor stops instead of failing record after record.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            ConnectError::Unreachable { .. }
                | ConnectError::Credentials { .. }
                | ConnectError::Unavailable { .. }
        )
    }

    /// A create whose answer was lost (`self`, an `OutcomeUnknown`) and whose lookup then
    /// failed too (`lookup`): still unknown, so the create's intent stays open and is settled
    /// by the next run's lookup instead of being taken for "not written".
    pub fn still_unknown(self, lookup: &ConnectError) -> ConnectError {
        match self {
            ConnectError::OutcomeUnknown {
                system,
                request,
                reason,
            } => ConnectError::OutcomeUnknown {
                system,
                request,
                reason: format!("{reason}; looking the record up failed too: {lookup}"),
            },
            other => other,
        }
    }

    /// The system the error is about.
    pub fn system(&self) -> System {
        match self {
            ConnectError::Unreachable { system, .. }
            | ConnectError::Credentials { system, .. }
            | ConnectError::Unavailable { system, .. }
            | ConnectError::Rejected { system, .. }
            | ConnectError::OutcomeUnknown { system, .. }
            | ConnectError::Protocol { system, .. }
            | ConnectError::Invalid { system, .. }
            | ConnectError::NotFound { system, .. } => *system,
        }
    }
}
