//! Container ids, exec ids and namespaces (`ids::validate`): they become
//! path components, socket names and runtime arguments.
//!
//! Input: one selector byte (namespace, container id, exec id), then the
//! id.
//!
//! Properties: the validator agrees with containerd's grammar
//! `^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$` and its length limits (checked
//! here by a separate matcher); an accepted id has no `/`, `..`, NUL or
//! leading `-` and is exactly one path component under the runtime root;
//! a rejection names the kind, quotes the id shortened, and says why, in
//! one lower-case line.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use robust_config::{ids, Config};
use robust_fuzz::check_message;

/// containerd's identifier grammar, matched another way: split at the
/// separators, every piece non-empty and alphanumeric.
fn grammar(id: &str) -> bool {
    id.split(['.', '_', '-'])
        .all(|piece| !piece.is_empty() && piece.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(id) = std::str::from_utf8(rest) else {
        return;
    };
    let (kind, max) = match selector % 3 {
        0 => (ids::NAMESPACE, ids::MAX_NAMESPACE_LEN),
        1 => (ids::CONTAINER_ID, ids::MAX_ID_LEN),
        _ => (ids::EXEC_ID, ids::MAX_ID_LEN),
    };
    let expected = !id.is_empty() && id.len() <= max && grammar(id);
    match ids::validate(kind, id) {
        Ok(()) => {
            assert!(expected, "{kind} {id:?} accepted");
            assert!(!id.contains('/') && !id.contains("..") && !id.contains('\0'));
            assert!(!id.starts_with('-'));
            let mut comps = Path::new(id).components();
            assert_eq!(comps.next(), Some(Component::Normal(id.as_ref())));
            assert_eq!(comps.next(), None);
            if kind == ids::NAMESPACE {
                let root = Config::default().runtime_root(id).unwrap();
                assert_eq!(root.parent(), Some(Path::new("/run/containerd/runc")));
            }
        }
        Err(e) => {
            assert!(!expected, "{kind} {id:?} rejected: {e}");
            let msg = e.to_string();
            check_message("id", &msg, 1024);
            assert!(
                msg.starts_with(&format!("invalid {kind} \"")),
                "id: error does not name the kind: {msg:?}"
            );
            // The reason follows the quoted id.
            let reason = msg.rsplit("\": ").next().unwrap_or_default();
            assert!(!reason.is_empty(), "id: no reason in {msg:?}");
        }
    }
});
