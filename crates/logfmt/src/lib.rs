//! logfmt values: the one quoting function of the shim's logs (every crate
//! that logs a value it did not write itself quotes it here). A value is
//! written quoted, with `"`, `\` and control characters escaped, so that a
//! runtime's message (which often holds quotes, sometimes newlines) stays
//! one value on one line.
#![deny(unsafe_code)]

use std::fmt::{Display, Write};

/// `v` as a quoted logfmt value: `"` and `\` are escaped with a backslash,
/// newline, carriage return and tab as `\n`, `\r`, `\t`, other control
/// characters as `\u{..}`.
pub fn quote(v: impl Display) -> String {
    let s = v.to_string();
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The reader of what [`quote`] writes, for tests and tools: a line of
/// `key=value` pairs separated by spaces, each value bare or quoted with
/// backslash escapes. `None` when the line is not logfmt (an unterminated
/// quote, text right after a closing quote, a quote in a bare value).
pub fn parse(line: &str) -> Option<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    let mut it = line.chars().peekable();
    loop {
        while it.peek() == Some(&' ') {
            it.next();
        }
        if it.peek().is_none() {
            return Some(pairs);
        }
        let key: String = std::iter::from_fn(|| it.next_if(|c| *c != '=' && *c != ' ')).collect();
        if it.next() != Some('=') || key.is_empty() {
            return None;
        }
        let mut val = String::new();
        if it.peek() == Some(&'"') {
            it.next();
            loop {
                match it.next()? {
                    '"' => break,
                    '\\' => match it.next()? {
                        'n' => val.push('\n'),
                        'r' => val.push('\r'),
                        't' => val.push('\t'),
                        'u' => {
                            if it.next()? != '{' {
                                return None;
                            }
                            let hex: String =
                                std::iter::from_fn(|| it.next_if(|c| *c != '}')).collect();
                            it.next()?;
                            val.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        c => val.push(c),
                    },
                    c => val.push(c),
                }
            }
            if it.peek().is_some_and(|c| *c != ' ') {
                return None;
            }
        } else {
            val = std::iter::from_fn(|| it.next_if(|c| *c != ' ')).collect();
            if val.contains('"') {
                return None;
            }
        }
        pairs.push((key, val));
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, quote};

    #[test]
    fn quotes_escape_what_would_end_the_value() {
        assert_eq!(quote("a \"b\"\\\n"), "\"a \\\"b\\\"\\\\\\n\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("t\tr\r\u{1b}"), "\"t\\tr\\r\\u{1b}\"");
        assert_eq!(quote(42), "\"42\"");
    }

    /// runc's messages hold quotes and sometimes newlines: quoted, such a
    /// message stays one value of one line, and reads back unchanged.
    #[test]
    fn a_message_with_quotes_and_newlines_stays_one_value() {
        let runc = "container_linux.go:380: starting container process caused: \
                    exec: \"/no-such\": stat /no-such: no such file or directory\n\
                    time=\"2024-01-01T00:00:00Z\" level=error msg=\"x\" \\ \t\r end";
        let line = format!("msg=\"rpc failed\" id=c1 error={} took=1ms", quote(runc));
        assert_eq!(line.lines().count(), 1, "{line}");
        let pairs = parse(&line).expect("one logfmt line");
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["msg", "id", "error", "took"], "{line}");
        assert_eq!(pairs[2].1, runc);
        // unquoted, the same message breaks the line apart
        let raw = format!("msg=\"rpc failed\" id=c1 error=\"{runc}\" took=1ms");
        assert!(
            raw.lines().count() > 1 || parse(&raw).is_none_or(|p| p.len() != 4),
            "{raw}"
        );
    }
}
