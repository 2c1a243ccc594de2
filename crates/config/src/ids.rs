//! Validation of container ids, exec ids and namespaces.
//!
//! These strings come from containerd (and, through it, from any API
//! client) and end up in paths, socket names and runtime command lines, so
//! they are checked before use. The grammar is containerd's identifier rule
//!
//! ```text
//! ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$
//! ```
//!
//! matched by hand: letters and digits, with single `.`, `_` or `-`
//! separators between them. That grammar already excludes `..`, `/`, NUL
//! and a leading `-`; the matcher still names those cases in its error.
//!
//! The length limit is containerd's too: 76 bytes (`identifiers.Validate`,
//! the same in containerd 1.6 through 2.x) for namespaces, container ids
//! and exec ids alike. containerd applies that rule to exec ids as well
//! before it calls a shim's `Exec` (runtime v2 `shimTask.Exec`), so no id
//! containerd sends is refused here.

use crate::error::{quote, ConfigError};

/// `kind` for a namespace.
pub const NAMESPACE: &str = "namespace";
/// `kind` for a container id.
pub const CONTAINER_ID: &str = "container id";
/// `kind` for an exec id.
pub const EXEC_ID: &str = "exec id";

/// Longest namespace accepted, in bytes (containerd's limit).
pub const MAX_NAMESPACE_LEN: usize = 76;
/// Longest container or exec id accepted, in bytes (containerd's limit).
pub const MAX_ID_LEN: usize = 76;

/// Validates an identifier of the given kind.
///
/// `kind` names the identifier in the error (use [`NAMESPACE`],
/// [`CONTAINER_ID`] or [`EXEC_ID`]). A kind of `"namespace"` is limited to
/// [`MAX_NAMESPACE_LEN`] bytes, any other kind to [`MAX_ID_LEN`] (both are
/// containerd's 76).
pub fn validate(kind: &str, id: &str) -> Result<(), ConfigError> {
    let max = if kind == NAMESPACE {
        MAX_NAMESPACE_LEN
    } else {
        MAX_ID_LEN
    };
    check(id, max).map_err(|reason| ConfigError::InvalidId {
        kind: kind.to_string(),
        id: quote(id),
        reason,
    })
}

/// Validates a namespace.
pub fn validate_namespace(ns: &str) -> Result<(), ConfigError> {
    validate(NAMESPACE, ns)
}

/// Validates a container id.
pub fn validate_container_id(id: &str) -> Result<(), ConfigError> {
    validate(CONTAINER_ID, id)
}

/// Validates an exec id.
pub fn validate_exec_id(id: &str) -> Result<(), ConfigError> {
    validate(EXEC_ID, id)
}

fn check(id: &str, max: usize) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".to_string());
    }
    if id.len() > max {
        return Err(format!("longer than {max} bytes"));
    }
    // The specific rejections first, for a clearer message.
    if id.contains('\0') {
        return Err("contains a nul byte".to_string());
    }
    if id.contains('/') {
        return Err("contains '/'".to_string());
    }
    if id.contains("..") {
        return Err("contains \"..\"".to_string());
    }
    if id.starts_with('-') {
        return Err("starts with '-'".to_string());
    }
    // The grammar: alnum+ ( sep alnum+ )*
    let bytes = id.as_bytes();
    let mut prev_was_sep = true; // at start, a separator is not allowed
    for (i, &b) in bytes.iter().enumerate() {
        if b.is_ascii_alphanumeric() {
            prev_was_sep = false;
        } else if matches!(b, b'.' | b'_' | b'-') {
            if prev_was_sep {
                return Err(if i == 0 {
                    "must start with a letter or digit".to_string()
                } else {
                    "separators ('.', '_', '-') must be followed by a letter or digit".to_string()
                });
            }
            prev_was_sep = true;
        } else {
            // Name the offending character. Every byte before `i` is ASCII,
            // so `i` is a character boundary; `get` keeps that unchecked
            // assumption from ever panicking.
            let c = id
                .get(i..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or('\u{fffd}');
            return Err(format!(
                "contains {:?} (allowed: letters, digits, '.', '_', '-')",
                c
            ));
        }
    }
    if prev_was_sep {
        return Err("must end with a letter or digit".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(kind: &str, id: &str) -> String {
        validate(kind, id).unwrap_err().to_string()
    }

    #[test]
    fn accepts_valid_identifiers() {
        for id in [
            "a",
            "default",
            "k8s.io",
            "moby",
            "abc-def_ghi.jkl",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "A1-b2.C3_d4",
        ] {
            validate(CONTAINER_ID, id).unwrap();
            validate(NAMESPACE, id).unwrap();
        }
        validate_exec_id("exec-1").unwrap();
        validate_container_id("c1").unwrap();
        validate_namespace("k8s.io").unwrap();
    }

    #[test]
    fn rejects_what_containerd_rejects() {
        for id in [
            "",
            ".",
            "..",
            "../etc",
            "a/b",
            "/abs",
            "a\0b",
            "-leading",
            "_leading",
            ".leading",
            "trailing-",
            "trailing.",
            "a--b",
            "a.-b",
            "a b",
            "a\nb",
            "é",
            "a:b",
            "a..b",
        ] {
            assert!(validate(CONTAINER_ID, id).is_err(), "{id:?} accepted");
        }
    }

    #[test]
    fn errors_name_the_kind_the_id_and_the_reason() {
        assert_eq!(
            reason(NAMESPACE, "a/b"),
            "invalid namespace \"a/b\": contains '/'"
        );
        assert!(reason(EXEC_ID, "").starts_with("invalid exec id \"\": must not be empty"));
        assert!(reason(CONTAINER_ID, "a\0").contains("nul byte"));
        assert!(reason(CONTAINER_ID, "x..y").contains("\"..\""));
        assert!(reason(CONTAINER_ID, "-x").contains("starts with '-'"));
        assert!(reason(CONTAINER_ID, "a b").contains("' '"));
        assert!(reason(CONTAINER_ID, "aé").contains("'é'"));
    }

    #[test]
    fn length_limit_is_containerds_76_for_every_kind() {
        for kind in [NAMESPACE, CONTAINER_ID, EXEC_ID] {
            validate(kind, &"i".repeat(76)).unwrap();
            let msg = reason(kind, &"i".repeat(77));
            assert!(msg.contains("longer than 76 bytes"), "{msg}");
            assert!(msg.starts_with(&format!("invalid {kind} ")), "{msg}");
        }
        // A 64-hex id (CRI's and docker's container and exec ids) fits.
        validate(EXEC_ID, &"0123456789abcdef".repeat(4)).unwrap();
        // The message quotes a shortened id, not all of it.
        let msg = reason(CONTAINER_ID, &"i".repeat(4096));
        assert!(msg.len() < 200, "{msg}");
    }
}
