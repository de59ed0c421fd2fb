//! The helper functions rule expressions call: `domain`, `normalize_name`, `email`, `digits`,
//! `lower`, `upper`, `trim`, `first`, `blank`, `present`, `url`.
//!
//! Every helper accepts `()` (a missing value) as well as text, and returns `()` for a blank or
//! unusable result, so `domain(record.website)` is safe on a record without a website. The
//! plain-Rust functions here are also what the tests exercise directly.

use rhai::{Dynamic, Engine, ImmutableString};

/// Lower-cased text; `None` when blank.
pub fn lower(s: &str) -> Option<String> {
    non_blank(s.to_lowercase())
}

/// Upper-cased text; `None` when blank.
pub fn upper(s: &str) -> Option<String> {
    non_blank(s.to_uppercase())
}

/// Text without leading/trailing white space; `None` when nothing is left.
pub fn trim(s: &str) -> Option<String> {
    non_blank(s.trim().to_string())
}

fn non_blank(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// The domain of a URL (`https://www.Acme.com/about` → `acme.com`), a bare host
/// (`acme.com.au`) or an email address (`jo@acme.com` → `acme.com`). `None` when there is no
/// plausible domain.
pub fn domain(s: &str) -> Option<String> {
    let mut t = s.trim().to_lowercase();
    if t.is_empty() {
        return None;
    }
    if let Some(rest) = t.strip_prefix("mailto:") {
        t = rest.to_string();
    }
    let host: &str = if !t.contains("://") && t.contains('@') {
        t.rsplit('@').next().unwrap_or("")
    } else {
        let after_scheme = t.split_once("://").map_or(t.as_str(), |(_, r)| r);
        let end = after_scheme
            .find(['/', '?', '#'])
            .unwrap_or(after_scheme.len());
        let authority = &after_scheme[..end];
        // Drop user info.
        authority.rsplit('@').next().unwrap_or("")
    };
    // Drop a port.
    let host = match host.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_end_matches('.');
    let host = host.strip_prefix("www.").unwrap_or(host);
    let valid = host.contains('.')
        && !host.starts_with('.')
        && !host.contains("..")
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
    valid.then(|| host.to_string())
}

/// A normalised email address (trimmed, lower case, `mailto:` dropped); `None` unless it looks
/// like `local@domain.tld`.
pub fn email(s: &str) -> Option<String> {
    let t = s.trim().to_lowercase();
    let t = t.strip_prefix("mailto:").unwrap_or(&t).trim();
    let (local, dom) = t.split_once('@')?;
    let ok = !local.is_empty()
        && !dom.contains('@')
        && dom.contains('.')
        && !dom.starts_with('.')
        && !dom.ends_with('.')
        && !t.chars().any(char::is_whitespace);
    ok.then(|| t.to_string())
}

/// Only the digits of a phone number (`+61 (2) 9999-0000` → `61299990000`); `None` when there
/// are none.
pub fn digits(s: &str) -> Option<String> {
    non_blank(s.chars().filter(char::is_ascii_digit).collect())
}

/// A URL with a scheme: `acme.com` → `https://acme.com`; already-schemed URLs unchanged.
pub fn url(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    if t.contains("://") {
        Some(t.to_string())
    } else {
        Some(format!("https://{t}"))
    }
}

/// Legal-form words dropped from the end of a company name.
const LEGAL_SUFFIXES: &[&str] = &[
    "ltd",
    "limited",
    "pty",
    "proprietary",
    "inc",
    "incorporated",
    "llc",
    "llp",
    "lp",
    "plc",
    "corp",
    "corporation",
    "co",
    "company",
    "gmbh",
    "ag",
    "kg",
    "ohg",
    "mbh",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "bv",
    "nv",
    "oy",
    "oyj",
    "ab",
    "as",
    "asa",
    "aps",
    "kk",
    "pte",
    "pvt",
    "pl",
    "nz",
    "sl",
    "sro",
];

/// A company name reduced for comparison: accents folded (`Société` → `societe`), lower case,
/// punctuation dropped, white space collapsed, trailing legal forms removed (`Pty Ltd`, `GmbH
/// & Co. KG`, `S.A.`), a leading `the` dropped. `Acme Pty Ltd` and `ACME` both give `acme`.
pub fn normalize_name(s: &str) -> Option<String> {
    let mut folded = String::with_capacity(s.len());
    for c in s.chars() {
        match fold(c) {
            Some(r) => folded.push_str(r),
            None => folded.extend(c.to_lowercase()),
        }
    }
    let cleaned: String = folded
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    // Merge runs of single letters ("s a" from "S.A.") into one word.
    let mut words: Vec<String> = Vec::new();
    let mut run = String::new();
    for w in cleaned.split_whitespace() {
        if w.chars().count() == 1 && w.chars().all(char::is_alphabetic) {
            run.push_str(w);
        } else {
            if !run.is_empty() {
                words.push(std::mem::take(&mut run));
            }
            words.push(w.to_string());
        }
    }
    if !run.is_empty() {
        words.push(run);
    }
    if words.len() > 1 && words[0] == "the" {
        words.remove(0);
    }
    while words.len() > 1
        && words
            .last()
            .is_some_and(|w| LEGAL_SUFFIXES.contains(&w.as_str()))
    {
        words.pop();
    }
    non_blank(words.join(" "))
}

/// Latin letters with diacritics → plain ASCII (lower case).
fn fold(c: char) -> Option<&'static str> {
    Some(match c {
        'À'..='Å' | 'à'..='å' | 'Ā' | 'ā' | 'Ă' | 'ă' | 'Ą' | 'ą' => "a",
        'Æ' | 'æ' => "ae",
        'Ç' | 'ç' | 'Ć' | 'ć' | 'Ĉ' | 'ĉ' | 'Ċ' | 'ċ' | 'Č' | 'č' => "c",
        'Ð' | 'ð' | 'Ď' | 'ď' | 'Đ' | 'đ' => "d",
        'È'..='Ë' | 'è'..='ë' | 'Ē' | 'ē' | 'Ĕ' | 'ĕ' | 'Ė' | 'ė' | 'Ę' | 'ę' | 'Ě' | 'ě' => {
            "e"
        }
        'Ĝ' | 'ĝ' | 'Ğ' | 'ğ' | 'Ġ' | 'ġ' | 'Ģ' | 'ģ' => "g",
        'Ĥ' | 'ĥ' | 'Ħ' | 'ħ' => "h",
        'Ì'..='Ï' | 'ì'..='ï' | 'Ĩ' | 'ĩ' | 'Ī' | 'ī' | 'Ĭ' | 'ĭ' | 'Į' | 'į' | 'İ' | 'ı' => {
            "i"
        }
        'Ĵ' | 'ĵ' => "j",
        'Ķ' | 'ķ' => "k",
        'Ĺ' | 'ĺ' | 'Ļ' | 'ļ' | 'Ľ' | 'ľ' | 'Ŀ' | 'ŀ' | 'Ł' | 'ł' => "l",
        'Ñ' | 'ñ' | 'Ń' | 'ń' | 'Ņ' | 'ņ' | 'Ň' | 'ň' => "n",
        'Ò'..='Ö' | 'Ø' | 'ò'..='ö' | 'ø' | 'Ō' | 'ō' | 'Ŏ' | 'ŏ' | 'Ő' | 'ő' => "o",
        'Œ' | 'œ' => "oe",
        'Ŕ' | 'ŕ' | 'Ŗ' | 'ŗ' | 'Ř' | 'ř' => "r",
        'Ś' | 'ś' | 'Ŝ' | 'ŝ' | 'Ş' | 'ş' | 'Š' | 'š' => "s",
        'ß' => "ss",
        'Ţ' | 'ţ' | 'Ť' | 'ť' | 'Ŧ' | 'ŧ' => "t",
        'Þ' | 'þ' => "th",
        'Ù'..='Ü'
        | 'ù'..='ü'
        | 'Ũ'
        | 'ũ'
        | 'Ū'
        | 'ū'
        | 'Ŭ'
        | 'ŭ'
        | 'Ů'
        | 'ů'
        | 'Ű'
        | 'ű'
        | 'Ų'
        | 'ų' => "u",
        'Ŵ' | 'ŵ' => "w",
        'Ý' | 'ý' | 'ÿ' | 'Ŷ' | 'ŷ' | 'Ÿ' => "y",
        'Ź' | 'ź' | 'Ż' | 'ż' | 'Ž' | 'ž' => "z",
        _ => return None,
    })
}

/// True for `()`, an empty string, or a string of only white space.
pub fn is_blank(v: &Dynamic) -> bool {
    if v.is_unit() {
        return true;
    }
    match v.read_lock::<ImmutableString>() {
        Some(s) => s.trim().is_empty(),
        None => false,
    }
}

fn text_result(r: Option<String>) -> Dynamic {
    match r {
        Some(s) => Dynamic::from(ImmutableString::from(s)),
        None => Dynamic::UNIT,
    }
}

/// Registers one text helper for text and `()` arguments.
fn text_fn(engine: &mut Engine, name: &str, f: fn(&str) -> Option<String>) {
    engine.register_fn(name, move |s: ImmutableString| text_result(f(&s)));
    engine.register_fn(name, |_: ()| Dynamic::UNIT);
}

fn first_of(values: &[Dynamic]) -> Dynamic {
    values
        .iter()
        .find(|v| !is_blank(v))
        .cloned()
        .unwrap_or(Dynamic::UNIT)
}

/// Registers every helper on `engine`.
pub fn register(engine: &mut Engine) {
    text_fn(engine, "lower", lower);
    text_fn(engine, "upper", upper);
    text_fn(engine, "trim", trim);
    text_fn(engine, "domain", domain);
    text_fn(engine, "email", email);
    text_fn(engine, "digits", digits);
    text_fn(engine, "url", url);
    text_fn(engine, "normalize_name", normalize_name);
    text_fn(engine, "normalise_name", normalize_name);

    engine.register_fn("blank", |v: Dynamic| is_blank(&v));
    engine.register_fn("present", |v: Dynamic| !is_blank(&v));

    engine.register_fn("first", |a: rhai::Array| first_of(&a));
    engine.register_fn("first", |a: Dynamic| first_of(&[a]));
    engine.register_fn("first", |a: Dynamic, b: Dynamic| first_of(&[a, b]));
    engine.register_fn("first", |a: Dynamic, b: Dynamic, c: Dynamic| {
        first_of(&[a, b, c])
    });
    engine.register_fn("first", |a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic| {
        first_of(&[a, b, c, d])
    });
    engine.register_fn(
        "first",
        |a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic, e: Dynamic| first_of(&[a, b, c, d, e]),
    );
    engine.register_fn(
        "first",
        |a: Dynamic, b: Dynamic, c: Dynamic, d: Dynamic, e: Dynamic, f: Dynamic| {
            first_of(&[a, b, c, d, e, f])
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert_eq!(
            domain("https://www.Acme.com/about?x=1").as_deref(),
            Some("acme.com")
        );
        assert_eq!(domain("acme.com.au").as_deref(), Some("acme.com.au"));
        assert_eq!(domain("Jo.Bloggs@Acme.COM").as_deref(), Some("acme.com"));
        assert_eq!(
            domain("http://user@host.io:8080/").as_deref(),
            Some("host.io")
        );
        assert_eq!(domain("mailto:x@y.org").as_deref(), Some("y.org"));
        assert_eq!(domain("not a domain"), None);
        assert_eq!(domain("localhost"), None);
        assert_eq!(domain(""), None);
        assert_eq!(domain("münchen.de").as_deref(), Some("münchen.de"));
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name("Acme Pty Ltd").as_deref(), Some("acme"));
        assert_eq!(normalize_name("ACME").as_deref(), Some("acme"));
        assert_eq!(normalize_name("Acme, Inc.").as_deref(), Some("acme"));
        assert_eq!(
            normalize_name("Société Générale S.A.").as_deref(),
            Some("societe generale")
        );
        assert_eq!(
            normalize_name("Müller GmbH & Co. KG").as_deref(),
            Some("muller")
        );
        assert_eq!(normalize_name("The Company").as_deref(), Some("company"));
        assert_eq!(normalize_name("Ōkubo K.K.").as_deref(), Some("okubo"));
        assert_eq!(
            normalize_name("  The   Widget   Co  ").as_deref(),
            Some("widget")
        );
        assert_eq!(normalize_name("..."), None);
    }

    #[test]
    fn emails_digits_and_text() {
        assert_eq!(email("  Jo@Acme.COM ").as_deref(), Some("jo@acme.com"));
        assert_eq!(email("mailto:jo@acme.com").as_deref(), Some("jo@acme.com"));
        assert_eq!(email("jo@acme"), None);
        assert_eq!(email("not an email"), None);
        assert_eq!(email("a@b@c.com"), None);
        assert_eq!(digits("+61 (2) 9999-0000").as_deref(), Some("61299990000"));
        assert_eq!(digits("n/a"), None);
        assert_eq!(trim("  x "), Some("x".into()));
        assert_eq!(trim("   "), None);
        assert_eq!(lower("ABC").as_deref(), Some("abc"));
        assert_eq!(url("acme.com").as_deref(), Some("https://acme.com"));
        assert_eq!(url("http://a.b").as_deref(), Some("http://a.b"));
    }
}
