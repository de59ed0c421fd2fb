//! Customer text speaks the customer's language: the internal behaviour codes of DESIGN.md
//! ("B7", "B16", …) appear in nothing a user reads. Scanned here: the shipped JSON Schemas
//! (what an editor shows on hover), the shipped rule files, the customer docs, every string
//! literal in the product's source (messages, plan and sync-log reasons, diagnostic help), the
//! recorded plan and check outputs, and the `--help` of every command and subcommand.
//!
//! Comments in the source may name the codes: they are for the developers who read DESIGN.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

fn code() -> Regex {
    Regex::new(r"\bB([1-9]|1[0-9]|2[01])\b").unwrap()
}

/// Every file under `dir` (recursively) whose name ends with one of `exts`.
fn files(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if exts
                .iter()
                .any(|e| p.file_name().unwrap().to_string_lossy().ends_with(e))
            {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no {exts:?} files under {dir}");
    out
}

/// The lines of `text` that carry a code, as `where:line: text`.
fn hits(code: &Regex, place: &str, text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| code.is_match(l))
        .map(|(i, l)| format!("{place}:{}: {}", i + 1, l.trim()))
        .collect()
}

/// The string literals of a Rust source file (plain, byte and raw), with the line each starts
/// on; comments and char literals are skipped.
fn string_literals(src: &str) -> Vec<(usize, String)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        match (c[i], at(i + 1)) {
            ('\n', _) => {
                line += 1;
                i += 1;
            }
            ('/', '/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            ('/', '*') => {
                let mut depth = 0;
                loop {
                    if at(i) == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if at(i) == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else if i >= c.len() {
                        break;
                    } else {
                        if c[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            ('r', '"') | ('r', '#')
                if i == 0 || !(at(i - 1).is_alphanumeric() || at(i - 1) == '_') =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while at(j) == '#' {
                    hashes += 1;
                    j += 1;
                }
                if at(j) != '"' {
                    i += 1;
                    continue;
                }
                let close: String = std::iter::once('"')
                    .chain("#".repeat(hashes).chars())
                    .collect();
                let rest: String = c[j + 1..].iter().collect();
                let end = rest.find(&close).unwrap_or(rest.len());
                let body = rest[..end].to_string();
                out.push((line, body.clone()));
                line += body.matches('\n').count();
                i = j + 1 + body.chars().count() + close.chars().count();
            }
            ('"', _) => {
                let start = line;
                let mut body = String::new();
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        body.push(c[i]);
                        i += 1;
                    }
                    if at(i) == '\n' {
                        line += 1;
                    }
                    body.push(at(i));
                    i += 1;
                }
                i += 1;
                out.push((start, body));
            }
            ('\'', _) => {
                // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
                if at(i + 1) == '\\' {
                    i += 2;
                    while i < c.len() && c[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[test]
fn the_literal_scanner_finds_strings_and_skips_comments() {
    let src = "// \"B7\" in a comment\nlet a = \"one B7\"; /* \"B8\" */ let c = '\"';\n\
               let b = r#\"raw \"B9\" inside\"#; let l: &'static str = \"x\\\"B10\\\"\";\n";
    let lits = string_literals(src);
    let bodies: Vec<&str> = lits.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(
        bodies,
        ["one B7", "raw \"B9\" inside", "x\\\"B10\\\""],
        "{lits:?}"
    );
    assert_eq!(lits[0].0, 2);
    assert_eq!(lits[2].0, 3);
    let code = code();
    assert!(code.is_match("contact has no company (B7)"));
    assert!(code.is_match("B21: limits"));
    assert!(!code.is_match("B2B leads, B22, AB7, B0"));
}

#[test]
fn shipped_schemas_rules_and_customer_docs_carry_no_internal_code() {
    let code = code();
    let mut found = Vec::new();
    let mut shipped = files("schemas", &[".json"]);
    shipped.extend(files("rules", &[".yaml", ".yml"]));
    shipped.extend(files("tests/it/snapshots", &[".snap"]));
    shipped.extend(
        [
            "README.md",
            "docs/rules.md",
            "docs/operations.md",
            "docs/sandbox.md",
            "docs/deploy.md",
            "docs/console.md",
        ]
        .map(PathBuf::from),
    );
    shipped.extend(files(
        "docs/deploy",
        &[".yaml", ".json", ".service", ".example", "Dockerfile"],
    ));
    for p in &shipped {
        let text = std::fs::read_to_string(p).unwrap();
        found.extend(hits(&code, &p.display().to_string(), &text));
    }
    assert!(
        found.is_empty(),
        "internal codes in customer text:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_string_in_the_product_carries_an_internal_code() {
    let code = code();
    let mut found = Vec::new();
    let sources = files("src", &[".rs"]);
    for p in &sources {
        let text = std::fs::read_to_string(p).unwrap();
        for (line, lit) in string_literals(&text) {
            if code.is_match(&lit) {
                found.push(format!("{}:{line}: \"{lit}\"", p.display()));
            }
        }
    }
    assert!(
        sources.len() > 50,
        "only {} source files found",
        sources.len()
    );
    assert!(
        found.is_empty(),
        "internal codes in messages or reasons:\n{}",
        found.join("\n")
    );
}

/// The subcommand names listed under `Commands:` in a clap help text.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_string)
        .collect()
}

fn help(path: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(path)
        .arg("--help")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")))
        .output()
        .unwrap();
    assert!(out.status.success(), "tandem {path:?} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn no_help_text_carries_an_internal_code() {
    let code = code();
    let mut found = Vec::new();
    let mut seen = 0;
    let mut todo: Vec<Vec<String>> = vec![Vec::new()];
    while let Some(path) = todo.pop() {
        let text = help(&path);
        seen += 1;
        found.extend(hits(
            &code,
            &format!("tandem {} --help", path.join(" ")),
            &text,
        ));
        for sub in subcommands(&text) {
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
    }
    // tandem, its twelve commands and the two of push.
    assert!(seen >= 15, "only {seen} help texts found");
    assert!(
        found.is_empty(),
        "internal codes in help text:\n{}",
        found.join("\n")
    );
}
