//! The record, its proof, the parent pid.

use super::*;

#[test]
fn ppid_parsing() {
    let stat = "1234 (a b) c) S 77 1234 1234 0 -1 4194560";
    assert_eq!(parse_ppid(stat), Some(77));
    assert_eq!(parse_ppid("garbage"), None);
    let me = std::process::id() as i32;
    assert_eq!(parent_of(me), Some(nix::unistd::getppid().as_raw()));
}

#[test]
fn record_round_trip_and_refusals() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("ns").join("c1");
    std::fs::create_dir_all(&b).unwrap();
    assert_eq!(OwnerRecord::read(&b), Input::Missing);
    let rec = OwnerRecord {
        id: "c1".into(),
        init_pid: 42,
        init_start: 7,
        pid_ns: Some(4026531836),
        shared_init: false,
        cgroup: vec![CgroupDir {
            controller: "pids".into(),
            path: d.path().join("cg"),
            ino: 1,
        }],
        not_owned: None,
    };
    rec.write(&b).unwrap();
    assert_eq!(OwnerRecord::read(&b), Input::Ok(rec.clone()));
    std::fs::write(b.join(RECORD_FILE), b"{").unwrap();
    assert!(matches!(OwnerRecord::read(&b), Input::Unusable(_)));
    std::fs::remove_file(b.join(RECORD_FILE)).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", b.join(RECORD_FILE)).unwrap();
    assert!(matches!(OwnerRecord::read(&b), Input::Unusable(_)));
}

/// A recorded directory made again since (another inode) is not ours;
/// one that is gone leaves nothing to prove.
#[test]
fn prove_checks_the_recorded_inode() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("state").join("ns").join("c1");
    std::fs::create_dir_all(&b).unwrap();
    let cgdir = d.path().join("cg");
    std::fs::create_dir(&cgdir).unwrap();
    let ino = std::fs::metadata(&cgdir).unwrap().ino();
    let mut rec = OwnerRecord {
        id: "c1".into(),
        init_pid: 0,
        init_start: 0,
        pid_ns: None,
        shared_init: false,
        cgroup: vec![CgroupDir {
            controller: String::new(),
            path: cgdir.clone(),
            ino,
        }],
        not_owned: None,
    };
    let scope = Scope {
        bundle: b.clone(),
        runtime_roots: vec![],
    };
    assert!(rec.prove(&scope).is_ok());
    rec.cgroup[0].ino = ino + 1;
    let e = rec.prove(&scope).unwrap_err().to_string();
    assert!(e.contains("made again"), "{e}");
    std::fs::remove_dir(&cgdir).unwrap();
    assert_eq!(rec.prove(&scope).unwrap_err(), NotProven::Gone);
    rec.cgroup.clear();
    rec.not_owned = Some("held others".into());
    assert_eq!(
        rec.prove(&scope).unwrap_err(),
        NotProven::Unproven("held others".into())
    );
}
