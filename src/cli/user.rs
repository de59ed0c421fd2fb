//! `tandem user add NAME --role viewer|operator [--password-stdin]`, `tandem user list`,
//! `tandem user remove NAME` (+ `--config`): the console's users in tandem.yaml.
//!
//! Only an Argon2 hash of the password is written. Without `--password-stdin` a random password
//! is made and shown once. The file is edited in place, keeping its comments and layout: the
//! user's entry goes under `console.users` (created when missing); the result is checked before
//! it replaces the file, atomically, and a running `tandem serve` picks the change up at once.
//!
//! Exit codes: 0 done; 2 invalid arguments or a config that would not check.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use super::common::Exit;
use tandem_core::rules::Paths;
use tandem_core::rules::config::Role;
use tandem_engine::server::console::auth;

/// Arguments of `tandem user`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub action: Action,
    /// The config file [default: $TANDEM_CONFIG, else rules/tandem.yaml].
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// `tandem user` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Add a user (or give an existing one a new password and role).
    Add {
        /// The name to sign in with (letters, digits, `.`, `_`, `-`, `@`).
        name: String,
        /// `viewer` (reads every page) or `operator` (also runs syncs and edits rules).
        #[arg(long, default_value = "viewer")]
        role: String,
        /// Read the password from the first line of standard input instead of making one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List the users and their roles.
    List,
    /// Remove a user (their sessions end at once).
    Remove {
        /// The user's name.
        name: String,
    },
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// The lines of the `console:` block's `users:` list: (first, past-the-end) line indexes of
/// each entry, and where a new entry goes. `None` when there is no such list.
struct UsersBlock {
    /// Index of the `users:` line.
    users_line: usize,
    /// Indent of list items (`- name: …`).
    item_indent: usize,
    /// Entries: (start, end, name).
    entries: Vec<(usize, usize, String)>,
    /// Where the list ends (insert here).
    end: usize,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Finds the top-level `console:` line and the end of its block.
fn console_block(lines: &[String]) -> Option<(usize, usize)> {
    let start = lines.iter().position(|l| l.starts_with("console:"))?;
    let mut end = start + 1;
    for (i, l) in lines.iter().enumerate().skip(start + 1) {
        if is_blank_or_comment(l) {
            continue;
        }
        if indent(l) == 0 {
            break;
        }
        end = i + 1;
    }
    Some((start, end))
}

fn users_block(lines: &[String], start: usize, end: usize) -> Option<UsersBlock> {
    let users_line = (start + 1..end).find(|&i| {
        let l = &lines[i];
        indent(l) > 0 && l.trim_start().starts_with("users:")
    })?;
    let base = indent(&lines[users_line]);
    let mut entries: Vec<(usize, usize, String)> = Vec::new();
    let mut item_indent = base + 2;
    let mut last = users_line + 1;
    for (i, l) in lines.iter().enumerate().take(end).skip(users_line + 1) {
        if is_blank_or_comment(l) {
            continue;
        }
        let ind = indent(l);
        if ind <= base && !l.trim_start().starts_with("- ") || ind < base {
            break;
        }
        let t = l.trim_start();
        if let Some(rest) = t.strip_prefix("- ") {
            item_indent = ind;
            if let Some(e) = entries.last_mut() {
                e.1 = i;
            }
            let name = rest
                .trim()
                .strip_prefix("name:")
                .map(|n| n.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
                .unwrap_or_default();
            entries.push((i, i + 1, name));
        } else if let Some(e) = entries.last_mut() {
            let t = t.trim();
            if let Some(n) = t.strip_prefix("name:")
                && e.2.is_empty()
            {
                e.2 = n.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
            }
        }
        last = i + 1;
        if let Some(e) = entries.last_mut() {
            e.1 = i + 1;
        }
    }
    Some(UsersBlock {
        users_line,
        item_indent,
        entries,
        end: last,
    })
}

fn entry_lines(indent: usize, name: &str, role: Role, hash: &str) -> Vec<String> {
    let pad = " ".repeat(indent);
    vec![
        format!("{pad}- name: {name}"),
        format!("{pad}  role: {}", role.as_str()),
        format!("{pad}  password_hash: \"{hash}\""),
    ]
}

/// The config text with `name`'s entry removed and, when `add` is given, a new one added.
pub fn edit(text: &str, name: &str, add: Option<(Role, &str)>) -> (String, bool) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut found = false;
    if let Some((start, end)) = console_block(&lines)
        && let Some(block) = users_block(&lines, start, end)
    {
        // `users: []` inline: the list is empty, make it a block.
        let users = lines[block.users_line].clone();
        if users.trim_end().ends_with("[]") {
            lines[block.users_line] = format!("{}users:", " ".repeat(indent(&users)));
        }
        for (s, e, n) in block.entries.iter().rev() {
            if n == name {
                lines.drain(*s..*e);
                found = true;
            }
        }
        if let Some((role, hash)) = add {
            let removed: usize = block
                .entries
                .iter()
                .filter(|(_, _, n)| n == name)
                .map(|(s, e, _)| e - s)
                .sum();
            let at = block.end - removed;
            for (k, l) in entry_lines(block.item_indent, name, role, hash)
                .into_iter()
                .enumerate()
            {
                lines.insert(at + k, l);
            }
        }
    } else if let Some((role, hash)) = add {
        match console_block(&lines) {
            Some((start, _)) => {
                let mut new = vec!["  users:".to_string()];
                new.extend(entry_lines(4, name, role, hash));
                for (k, l) in new.into_iter().enumerate() {
                    lines.insert(start + 1 + k, l);
                }
            }
            None => {
                if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                    lines.push(String::new());
                }
                lines.push(
                    "# Who may sign in to the console (`tandem user add NAME --role operator`)."
                        .into(),
                );
                lines.push("console:".into());
                lines.push("  users:".into());
                lines.extend(entry_lines(4, name, role, hash));
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    (out, found)
}

fn write_checked(path: &Path, text: &str) -> Result<(), String> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "tandem.yaml".into());
    let tmp = dir.join(format!(".{name}.{}.saving", std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    if let Err(report) = tandem_core::rules::check_config_file(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "{} would no longer check, so it was left as it was:\n{}",
            path.display(),
            report.render_human(false)
        ));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot replace {}: {e}", path.display())
    })
}

/// Adds (or replaces) a user in the config file at `path`; returns the password when one was
/// made.
pub fn add(
    path: &Path,
    name: &str,
    role: Role,
    password: Option<String>,
) -> Result<Option<String>, String> {
    if !valid_name(name) {
        return Err(format!(
            "`{name}` is not a user name: use letters, digits, `.`, `_`, `-` or `@` (at most 64)"
        ));
    }
    let made = password.is_none();
    let password = password.unwrap_or_else(|| auth::token(12));
    if password.chars().count() < 8 {
        return Err("the password is too short: use at least 8 characters".into());
    }
    let hash = auth::hash_password(&password)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (new, _) = edit(&text, name, Some((role, &hash)));
    write_checked(path, &new)?;
    Ok(made.then_some(password))
}

/// Runs `tandem user`.
pub fn run(args: Args) -> Exit {
    let paths = Paths::resolve(args.config.clone(), None);
    let path = paths.config;
    match args.action {
        Action::Add {
            name,
            role,
            password_stdin,
        } => {
            let role: Role = match role.parse() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {e}");
                    return Exit::Invalid;
                }
            };
            let password = if password_stdin {
                let mut line = String::new();
                if std::io::stdin().lock().read_line(&mut line).is_err() {
                    eprintln!("error: cannot read the password from standard input");
                    return Exit::Invalid;
                }
                Some(line.trim_end_matches(['\n', '\r']).to_string())
            } else {
                None
            };
            match add(&path, &name, role, password) {
                Ok(made) => {
                    println!(
                        "{name} can sign in to the console as {} ({})",
                        role.as_str(),
                        path.display()
                    );
                    if let Some(p) = made {
                        println!("password: {p}");
                        if std::io::stdout().is_terminal() {
                            eprintln!("(shown once: only its hash is kept)");
                        }
                    }
                    let _ = std::io::stdout().flush();
                    Exit::Ok
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::Invalid
                }
            }
        }
        Action::List => match tandem_core::rules::check_config_file(&path) {
            Ok(config) => {
                if config.console.users.is_empty() {
                    println!(
                        "no console users yet: add one with `tandem user add NAME --role operator`"
                    );
                }
                for u in &config.console.users {
                    println!("{}\t{}", u.name, u.role.as_str());
                }
                Exit::Ok
            }
            Err(report) => {
                eprint!("{}", report.render_human(false));
                Exit::Invalid
            }
        },
        Action::Remove { name } => {
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", path.display());
                    return Exit::Invalid;
                }
            };
            let (new, found) = edit(&text, &name, None);
            if !found {
                eprintln!(
                    "error: there is no console user `{name}` in {}",
                    path.display()
                );
                return Exit::Invalid;
            }
            match write_checked(&path, &new) {
                Ok(()) => {
                    println!("{name} removed");
                    Exit::Ok
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Exit::Invalid
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_the_rest_of_the_file() {
        let base = "# top\nhubspot:\n  url: x # keep\nsync:\n  poll_interval_seconds: 300\n";
        let (a, _) = edit(base, "ana", Some((Role::Operator, "H1")));
        assert!(a.starts_with(base), "{a}");
        assert!(a.contains("console:\n  users:\n    - name: ana\n      role: operator\n      password_hash: \"H1\"\n"));
        let (b, _) = edit(&a, "bo", Some((Role::Viewer, "H2")));
        assert!(b.contains("    - name: ana\n      role: operator\n      password_hash: \"H1\"\n    - name: bo\n      role: viewer\n"), "{b}");
        let (c, found) = edit(&b, "ana", Some((Role::Viewer, "H3")));
        assert!(found);
        assert!(
            !c.contains("H1") && c.contains("H3") && c.contains("H2"),
            "{c}"
        );
        let (d, found) = edit(&c, "bo", None);
        assert!(found && !d.contains("bo"), "{d}");
        let (_, found) = edit(&d, "nobody", None);
        assert!(!found);
        // A console block without users, followed by another section.
        let e0 = "console:\n  session_hours: 8\nsync:\n  poll_interval_seconds: 60\n";
        let (e, _) = edit(e0, "ana", Some((Role::Viewer, "H")));
        assert!(e.contains("console:\n  users:\n    - name: ana\n"), "{e}");
        assert!(e.contains("  session_hours: 8\nsync:"), "{e}");
        // `users: []`.
        let (f, _) = edit("console:\n  users: []\n", "ana", Some((Role::Viewer, "H")));
        assert!(f.contains("console:\n  users:\n    - name: ana\n"), "{f}");
    }
}
