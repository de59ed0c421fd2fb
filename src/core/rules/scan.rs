//! A scanner over Rhai source: which `record.x` field paths an expression reads (for the
//! unknown-field check and the properties a connector must request). Skips string and
//! character literals and comments, reads the code inside back-tick `${…}` interpolations.

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The field paths an expression reads from `record` (`record.a.b`, `record?.a`,
/// `record["a"]`), each segment with its character index in `src`. Method calls
/// (`record.name.to_lower()`) end a path. String and character literals and comments (`//`,
/// nested `/* */`) are skipped — except the code inside a back-tick string's `${…}`
/// interpolations, which is read like the rest.
pub(crate) fn record_paths(src: &str) -> Vec<Vec<(String, usize)>> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    scan_code(&chars, 0, false, &mut out);
    out
}

/// Scans code from `i` to the end, or — `interpolation` — to the `}` closing a `${`; returns
/// the index after where it stopped.
fn scan_code(
    chars: &[char],
    mut i: usize,
    interpolation: bool,
    out: &mut Vec<Vec<(String, usize)>>,
) -> usize {
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let skip_ws = |mut i: usize| {
        while at(i).is_whitespace() {
            i += 1;
        }
        i
    };
    let mut depth = 0usize;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                // Rhai escapes with `\`; a doubled quote is two literals for this purpose.
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            '`' => {
                i = scan_backtick(chars, i + 1, out);
                continue;
            }
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if at(i + 1) == '*' => {
                let mut nesting = 0usize;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == '*' {
                        nesting += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == '/' {
                        nesting -= 1;
                        i += 2;
                        if nesting == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                continue;
            }
            '{' => depth += 1,
            '}' if depth == 0 && interpolation => return i + 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if !ident_start(c) || (i > 0 && (ident_char(chars[i - 1]) || chars[i - 1] == '.')) {
            i += 1;
            continue;
        }
        let start = i;
        while ident_char(at(i)) {
            i += 1;
        }
        if chars[start..i].iter().collect::<String>() != "record" {
            continue;
        }
        let mut segs = Vec::new();
        loop {
            let mut j = skip_ws(i);
            if at(j) == '?' && at(j + 1) == '.' {
                j += 2;
            } else if at(j) == '.' {
                j += 1;
            } else if at(j) == '[' && segs.is_empty() {
                let k = skip_ws(j + 1);
                if at(k) != '"' {
                    break;
                }
                let name_start = k + 1;
                let mut e = name_start;
                while e < chars.len() && chars[e] != '"' {
                    e += 1;
                }
                segs.push((chars[name_start..e].iter().collect(), name_start));
                i = e + 1;
                break;
            } else {
                break;
            }
            j = skip_ws(j);
            if !ident_start(at(j)) {
                break;
            }
            let s0 = j;
            while ident_char(at(j)) {
                j += 1;
            }
            if at(skip_ws(j)) == '(' {
                break;
            }
            segs.push((chars[s0..j].iter().collect(), s0));
            i = j;
        }
        if !segs.is_empty() {
            out.push(segs);
        }
    }
    i
}

/// Skips a back-tick string from `i` (after its opening back-tick), scanning the code of its
/// `${…}` interpolations; returns the index after the closing back-tick. Back-tick strings
/// have no escapes except a doubled back-tick and `\${` (a literal `${`).
fn scan_backtick(chars: &[char], mut i: usize, out: &mut Vec<Vec<(String, usize)>>) -> usize {
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        match chars[i] {
            '`' if at(i + 1) == '`' => i += 2,
            '`' => return i + 1,
            '\\' if at(i + 1) == '$' => i += 2,
            '$' if at(i + 1) == '{' => i = scan_code(chars, i + 2, true, out),
            _ => i += 1,
        }
    }
    i
}

/// Index of the character of `text` that contains byte `offset` (the character count for an
/// offset at or past the end).
pub(crate) fn char_index_of_byte(text: &str, offset: usize) -> usize {
    text.char_indices()
        .take_while(|(b, c)| b + c.len_utf8() <= offset)
        .count()
}

/// Index of the character at 1-based (`line`, `column`) of `text`.
pub(crate) fn char_index(text: &str, line: usize, column: usize) -> usize {
    let mut idx = 0;
    let mut cur_line = 1;
    let mut chars = text.chars();
    while cur_line < line {
        match chars.next() {
            Some('\n') => {
                cur_line += 1;
                idx += 1;
            }
            Some(_) => idx += 1,
            None => return idx,
        }
    }
    idx + column.saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::{char_index_of_byte, record_paths};

    #[test]
    fn jsonpath_errors_are_byte_offsets() {
        // What serde_json_path reports: the byte offset of the first character it rejects.
        for (path, at) in [
            ("$.web[site", '['),
            ("$.名前[x", '['),
            ("$.ärä[x", '['),
            ("$.a.🎉.b[", '['),
        ] {
            let e = serde_json_path::JsonPath::parse(path).unwrap_err();
            assert_eq!(Some(e.position()), path.find(at), "{path}");
            let idx = char_index_of_byte(path, e.position());
            assert_eq!(path.chars().nth(idx), Some(at), "{path}");
        }
        assert_eq!(char_index_of_byte("aé", 0), 0);
        assert_eq!(char_index_of_byte("aé", 1), 1);
        assert_eq!(char_index_of_byte("aé", 2), 1); // inside `é`
        assert_eq!(char_index_of_byte("aé", 3), 2);
        assert_eq!(char_index_of_byte("aé", 99), 2);
    }

    fn names(src: &str) -> Vec<Vec<String>> {
        record_paths(src)
            .into_iter()
            .map(|p| p.into_iter().map(|(n, _)| n).collect())
            .collect()
    }

    #[test]
    fn finds_field_paths_not_methods_or_strings() {
        assert_eq!(
            names("record.name.to_lower() == \"record.x\" && record?.affiliation.email != ()"),
            vec![
                vec!["name".to_string()],
                vec!["affiliation".into(), "email".into()]
            ]
        );
        assert_eq!(
            names("record[\"name\"] + myrecord.x"),
            vec![vec!["name".to_string()]]
        );
        assert_eq!(
            names("// record.x\nrecord . status . title"),
            vec![vec!["status".to_string(), "title".into()]]
        );
        let p = record_paths("a + record.bc");
        assert_eq!(p[0][0].1, 11);
    }

    #[test]
    fn reads_interpolations_but_not_text() {
        assert_eq!(
            names("`${record.nmae} and ${ if true { `${record.a.b}` } else { \"\" } }` + record.c"),
            vec![
                vec!["nmae".to_string()],
                vec!["a".into(), "b".into()],
                vec!["c".into()]
            ]
        );
        // Text around the interpolations, `\${`, and other literals are not code; a doubled
        // back-tick is one inside the string, which goes on.
        assert_eq!(
            names("`record.x \\${record.y} ``${record.z}`` $record.w {}` + \"${record.v}\""),
            vec![vec!["z".to_string()]]
        );
        // …but the back-tick string ends where it ends.
        assert_eq!(
            names("`a``b` + record.after"),
            vec![vec!["after".to_string()]]
        );
        // Comments, nested block comments included.
        assert_eq!(
            names("/* record.x /* record.y */ record.z */ record.k // record.q"),
            vec![vec!["k".to_string()]]
        );
        // Positions are character indexes into the whole source.
        let src = "`é ${record.nmae}`";
        let p = record_paths(src);
        assert_eq!(p[0][0].1, src.chars().position(|c| c == 'n').unwrap());
        // Unterminated input never panics.
        for s in [
            "`${record.a",
            "`${",
            "/* record.x",
            "\"record.",
            "`${ `${ }",
        ] {
            let _ = record_paths(s);
        }
    }
}
