//! logfmt values: quoted, with `"`, `\` and newlines escaped, so that a
//! runtime's message (which often holds quotes) stays one value.

/// `s` as a quoted logfmt value.
pub fn quote(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_escape_what_would_end_the_value() {
        assert_eq!(super::quote("a \"b\"\\\n"), "\"a \\\"b\\\"\\\\\\n\"");
        assert_eq!(super::quote(""), "\"\"");
    }
}
