//! Hot reload (placeholder until the watcher lands).
