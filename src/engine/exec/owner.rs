//! Worker identities: the lease-owner string a worker claims jobs under, and the check that tells
//! whether the process behind an owner string is provably gone.
//!
//! An owner is `tandem@HOST:PID:START:NONCE` — the host name, the process id, the process's start
//! time in clock ticks since boot (Linux `/proc/PID/stat` field 22, `0` where unknown) and a
//! random nonce (several workers in one process). A job whose owner names this host and a PID that
//! no longer exists, or exists with another start time (the PID was reused), belongs to a dead
//! process: [`is_dead`] says so and the job can be taken over at once instead of waiting for its
//! lease to expire. Anything not provable (another host, no `/proc`) is "not dead".

use std::path::Path;

/// A fresh owner string for a worker of this process.
pub fn new_owner() -> String {
    let pid = std::process::id();
    let start = start_ticks(pid).unwrap_or(0);
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    format!("tandem@{}:{pid}:{start}:{}", hostname(), &nonce[..8])
}

/// This machine's host name (Linux `/proc/sys/kernel/hostname`, else `$HOSTNAME`, else
/// `localhost`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// The parts of an owner string: host, pid, start ticks.
fn parse(owner: &str) -> Option<(&str, u32, u64)> {
    let rest = owner.strip_prefix("tandem@")?;
    let mut parts = rest.rsplitn(4, ':');
    let _nonce = parts.next()?;
    let start = parts.next()?.parse().ok()?;
    let pid = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    Some((host, pid, start))
}

/// True when `owner` is a Tandem worker on this host whose process is gone. False when alive or
/// not provable.
pub fn is_dead(owner: &str) -> bool {
    let Some((host, pid, start)) = parse(owner) else {
        return false;
    };
    if host != hostname() || !Path::new("/proc/self/stat").exists() {
        return false;
    }
    if pid == std::process::id() {
        // This process: alive by definition (another worker of ours, or an earlier run in
        // the same process that ended without finishing — the lease rule covers that).
        return false;
    }
    match start_ticks(pid) {
        None => true,
        Some(now) => start != 0 && now != start,
    }
}

/// Field 22 of `/proc/PID/stat`: the process's start time in clock ticks after boot.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_owner_parses_and_is_alive() {
        let me = new_owner();
        let (host, pid, _) = parse(&me).unwrap();
        assert_eq!(host, hostname());
        assert_eq!(pid, std::process::id());
        assert!(!is_dead(&me));
    }

    #[test]
    fn a_finished_process_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start = start_ticks(pid);
        child.wait().unwrap();
        if Path::new("/proc/self/stat").exists() {
            let owner = format!(
                "tandem@{}:{pid}:{}:abcd1234",
                hostname(),
                start.unwrap_or(1)
            );
            assert!(is_dead(&owner));
        }
    }

    #[test]
    fn other_hosts_and_strangers_are_not_provably_dead() {
        assert!(!is_dead("tandem@some-other-host:1:1:abcd1234"));
        assert!(!is_dead("worker-7"));
        assert!(!is_dead(""));
    }
}
