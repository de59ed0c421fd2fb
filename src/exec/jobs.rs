//! The handlers of the manual runs.
