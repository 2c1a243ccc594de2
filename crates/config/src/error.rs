//! The one error type of the crate.

use std::io;
use std::path::PathBuf;

/// Longest excerpt of a user-supplied value quoted in an error message.
///
/// Values come from files and from containerd's stdin; a fuzzer will send
/// megabytes. Messages stay readable and log lines stay bounded.
const MAX_QUOTED: usize = 80;

/// Everything that can go wrong while reading the shim's configuration
/// inputs.
///
/// Messages are lower case, without a trailing period, and name the origin
/// (a file, or the containerd input the value came from) and the key that
/// was wrong, so that one log line is enough to fix the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be opened or read.
    #[error("config {}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The config file is larger than the crate accepts.
    #[error("config {}: file is larger than {limit} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },

    /// The text is not valid TOML (or JSON, for `options.json`).
    #[error("config {}: {message}", path.display())]
    Syntax {
        /// The file (or a pseudo path naming the input).
        path: PathBuf,
        /// What the parser said, with the position when known.
        message: String,
    },

    /// A key holds a value of the wrong type.
    #[error("config {}: key {key}: expected {expected}, found {found}", path.display())]
    WrongType {
        /// The file (or a pseudo path naming the input).
        path: PathBuf,
        /// The dotted key, e.g. `runtime.binary`.
        key: String,
        /// What the key accepts.
        expected: &'static str,
        /// The type that was found.
        found: &'static str,
    },

    /// A duration could not be parsed, or is zero or too large.
    #[error("config {}: key {key}: invalid duration {value}: {reason}", path.display())]
    InvalidDuration {
        /// The file (or a pseudo path naming the input).
        path: PathBuf,
        /// The dotted key, e.g. `timeouts.kill`.
        key: String,
        /// The value as written, quoted and shortened.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A value has the right type but is not acceptable.
    #[error("config {}: key {key}: invalid value {value}: {reason}", path.display())]
    InvalidValue {
        /// The file (or a pseudo path naming the input).
        path: PathBuf,
        /// The dotted key.
        key: String,
        /// The value as written, quoted and shortened.
        value: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A protobuf input from containerd could not be decoded.
    #[error("{what}: cannot decode: {message}")]
    Decode {
        /// Which input, e.g. `start input` or `runc options`.
        what: String,
        /// What the decoder said.
        message: String,
    },

    /// A container id, exec id or namespace is not acceptable.
    #[error("invalid {kind} {id}: {reason}")]
    InvalidId {
        /// What the identifier is, e.g. `namespace`.
        kind: String,
        /// The identifier, quoted and shortened.
        id: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl ConfigError {
    /// A [`ConfigError::Decode`], with the decoder's message normalized.
    pub(crate) fn decode(what: &str, message: impl AsRef<str>) -> ConfigError {
        ConfigError::Decode {
            what: what.to_string(),
            message: normalize(message.as_ref()),
        }
    }
}

/// Longest message from another library kept in an error, in characters.
/// The TOML parser quotes a duplicate key whole, however long it is.
const MAX_FOREIGN: usize = 240;

/// Brings a message from another library to this crate's style: one line
/// (lines joined with "; ") starting with a lower-case letter, no trailing
/// period, at most [`MAX_FOREIGN`] characters (then "…").
pub(crate) fn normalize(message: &str) -> String {
    let joined = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let joined = match joined.char_indices().nth(MAX_FOREIGN) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    };
    let trimmed = joined.trim_end_matches('.');
    let mut chars = trimmed.chars();
    match chars.next() {
        // Lower-case a capitalized first word, but leave acronyms
        // ("EOF", "UTF-8") alone.
        Some(first)
            if first.is_uppercase() && !chars.clone().next().is_some_and(char::is_uppercase) =>
        {
            first.to_lowercase().chain(chars).collect()
        }
        _ => trimmed.to_string(),
    }
}

/// Quotes `s` for an error message: shortened to a bounded length (on a
/// character boundary, marked `...`), then quoted as every logged value is
/// ([`robust_logfmt::quote`]: quotes, backslashes and control characters
/// escaped), so an error message stays one logfmt value.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED) {
        Some((cut, _)) => robust_logfmt::quote(format!("{}...", &s[..cut])),
        None => robust_logfmt::quote(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_messages_are_normalized() {
        assert_eq!(normalize("Unexpected EOF"), "unexpected EOF");
        assert_eq!(normalize("EOF while parsing."), "EOF while parsing");
        assert_eq!(
            normalize("invalid string\nexpected `\"`\n"),
            "invalid string; expected `\"`"
        );
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("É"), "é");
    }

    /// Found with fuzz/fuzz_targets/fuzz_config_toml.rs's property "an
    /// error is bounded": the TOML parser's "duplicate key" quoted a key of
    /// any length, so a 6000-byte key gave a 6 KB log line.
    #[test]
    fn foreign_messages_are_shortened() {
        let long = format!("duplicate key `{}`", "é".repeat(10_000));
        let n = normalize(&long);
        assert!(n.starts_with("duplicate key `éé"), "{n}");
        assert!(n.ends_with("éé…"), "{n}");
        assert_eq!(n.chars().count(), MAX_FOREIGN + 1);
        assert!(n.len() < 1000);
        let at_limit = "x".repeat(MAX_FOREIGN);
        assert_eq!(normalize(&at_limit), at_limit);
        assert_eq!(normalize(&format!("{at_limit}.")), format!("{at_limit}…"));
        let k = "k".repeat(6000);
        let e = crate::Config::parse(&format!("{k} = 1\n{k} = 2\n"), std::path::Path::new("/x"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config /x: invalid toml at line 2"), "{e}");
        assert!(e.contains("duplicate key"), "{e}");
        assert!(e.len() < 400, "{} bytes", e.len());
    }

    #[test]
    fn quote_escapes_and_shortens() {
        assert_eq!(quote("ten seconds"), "\"ten seconds\"");
        assert_eq!(quote("a\0b\n"), "\"a\\u{0}b\\n\"");
        assert_eq!(quote("q\"q"), "\"q\\\"q\"");
        let long = "é".repeat(500);
        let q = quote(&long);
        assert!(q.ends_with("...\""));
        assert_eq!(q.chars().filter(|c| *c == 'é').count(), MAX_QUOTED);
    }

    #[test]
    fn messages_are_lower_case_and_name_file_and_key() {
        let e = ConfigError::InvalidDuration {
            path: PathBuf::from("/etc/x.toml"),
            key: "timeouts.kill".into(),
            value: quote("ten seconds"),
            reason: "expected a number".into(),
        };
        let msg = e.to_string();
        assert!(msg.starts_with(
            "config /etc/x.toml: key timeouts.kill: invalid duration \"ten seconds\""
        ));
        assert!(!msg.ends_with('.'));
    }
}
