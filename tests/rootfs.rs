//! Root filesystems: `--rootfs DIR` as the isle's `/`. A Debian tree made
//! by mmdebstrap (cached under target/) runs its own python3, coreutils
//! and NSS as `chroot DIR` runs them; a small busybox tree shows symlinks
//! resolved inside the tree; read-only unless `:rw`; `-u` and `-w`; and
//! bad arguments refused in one line.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::debian::debian_tree;
use common::*;

/// `chroot TREE ARGS` natively, one at a time with the isles.
fn in_chroot(tree: &Path, args: &[&str]) -> Output {
    let _slot = isle_slot();
    Command::new("chroot")
        .arg(tree)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("TZ", "UTC")
        .output()
        .expect("chroot starts")
}

/// `atoll run FLAGS --rootfs ROOTFS ARGS`.
fn in_isle(rootfs: &str, flags: &[&str], args: &[&str]) -> Output {
    let mut all = vec!["run", "-e", "TZ=UTC", "--rootfs", rootfs];
    all.extend_from_slice(flags);
    all.extend_from_slice(args);
    run(&all)
}

fn assert_same_as_chroot(tree: &Path, args: &[&str]) {
    let native = in_chroot(tree, args);
    assert!(
        native.status.success(),
        "chroot {args:?}: {}",
        stderr(&native)
    );
    let isle = in_isle(tree.to_str().unwrap(), &[], args);
    assert_eq!(status(&isle), 0, "{args:?}: {}", stderr(&isle));
    assert_eq!(stdout(&isle), stdout(&native), "{args:?}");
    assert_eq!(stderr(&isle), stderr(&native), "{args:?}");
}

/// What a Python program sees of the tree: its stdlib (json, hashlib,
/// sqlite3 if present, threading), its /etc, its root directory, and the
/// absence of a file only the host has.
const PYTHON_LOOKS_AROUND: &str = r#"
import hashlib, json, os, sys, threading
results = []
worker = threading.Thread(target=lambda: results.append(hashlib.sha256(b"isle").hexdigest()))
worker.start(); worker.join()
print(json.dumps({
    "root": sorted(n for n in os.listdir("/") if not n.startswith(".")),
    "debian": open("/etc/debian_version").read().strip(),
    "version": sys.version.split()[0],
    "hash": results[0],
    "host_only": os.path.exists(sys.argv[1]),
    "cwd": os.getcwd(),
}, sort_keys=True))
"#;

#[test]
fn a_debian_tree_runs_its_own_programs_as_chroot_does() {
    if !require_kvm() {
        return;
    }
    let Some(tree) = debian_tree() else { return };
    // The host has gawk (install-deps); minbase Debian has only mawk.
    assert!(Path::new("/usr/bin/gawk").exists());
    assert!(!tree.join("usr/bin/gawk").exists());
    assert_same_as_chroot(
        &tree,
        &["python3", "-c", PYTHON_LOOKS_AROUND, "/usr/bin/gawk"],
    );
    assert_same_as_chroot(&tree, &["ls", "-l", "/etc/passwd", "/usr/bin"]);
    assert_same_as_chroot(&tree, &["sha256sum", "/etc/os-release"]);
    assert_same_as_chroot(&tree, &["id"]);
    assert_same_as_chroot(&tree, &["sort", "/etc/passwd"]);
    assert_same_as_chroot(&tree, &["date", "-d", "@86400"]);
}

#[test]
fn a_root_filesystem_is_read_only_unless_rw() {
    if !require_kvm() {
        return;
    }
    let Some(tree) = debian_tree() else { return };
    let name = format!("atoll-rw-{}", std::process::id());
    let write = format!("open('/root/{name}', 'w').write('from the isle')");
    let read_only = in_isle(tree.to_str().unwrap(), &[], &["python3", "-c", &write]);
    assert_eq!(status(&read_only), 1, "{}", stderr(&read_only));
    assert!(
        stderr(&read_only).contains("[Errno 30] Read-only file system"),
        "{}",
        stderr(&read_only)
    );
    assert!(!tree.join("root").join(&name).exists());

    let rw = format!("{}:rw", tree.display());
    let written = in_isle(&rw, &[], &["python3", "-c", &write]);
    assert_eq!(status(&written), 0, "{}", stderr(&written));
    let landed = tree.join("root").join(&name);
    let content = std::fs::read_to_string(&landed);
    let _ = std::fs::remove_file(&landed);
    assert_eq!(content.unwrap(), "from the isle");
}

#[test]
fn user_and_workdir_apply_in_the_root_filesystem() {
    if !require_kvm() {
        return;
    }
    let Some(tree) = debian_tree() else { return };
    let tree = tree.to_str().unwrap();
    let ids = "import os; print(os.getuid(), os.geteuid(), os.getgid(), os.getegid(), os.getcwd())";
    let named = in_isle(
        tree,
        &["-u", "nobody", "-w", "/var"],
        &["python3", "-c", ids],
    );
    assert_eq!(status(&named), 0, "{}", stderr(&named));
    assert_eq!(stdout(&named), "65534 65534 65534 65534 /var\n");
    let numeric = in_isle(tree, &["-u", "1000:5"], &["python3", "-c", ids]);
    assert_eq!(status(&numeric), 0, "{}", stderr(&numeric));
    assert_eq!(stdout(&numeric), "1000 1000 5 5 /\n");
    // coreutils id names them through the tree's own NSS files, as a
    // chroot with that identity does.
    let native = {
        let _slot = isle_slot();
        Command::new("chroot")
            .args(["--userspec=nobody:nogroup", tree, "id"])
            .output()
            .unwrap()
    };
    let isle = in_isle(tree, &["-u", "nobody"], &["id"]);
    assert_eq!(status(&isle), 0, "{}", stderr(&isle));
    assert_eq!(stdout(&isle), stdout(&native));
}

/// A tree holding static busybox and links to it: absolute, relative, and
/// one that points out of the tree.
fn busybox_tree(scratch: &Path) -> Option<PathBuf> {
    let busybox = require(static_busybox())?;
    let tree = scratch.join("tree");
    for dir in ["bin", "usr/bin", "etc"] {
        std::fs::create_dir_all(tree.join(dir)).unwrap();
    }
    copy_executable(Path::new(busybox), &tree.join("bin/busybox"));
    for applet in ["sh", "ls", "cat", "echo"] {
        std::os::unix::fs::symlink("/bin/busybox", tree.join("bin").join(applet)).unwrap();
    }
    std::os::unix::fs::symlink("../../bin/busybox", tree.join("usr/bin/head")).unwrap();
    std::fs::write(tree.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", tree.join("etc/absolute")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/hostname", tree.join("etc/escape")).unwrap();
    Some(tree)
}

#[test]
fn symlinks_resolve_inside_the_tree() {
    if !require_kvm() {
        return;
    }
    let scratch = Scratch::new("busybox");
    let Some(tree) = busybox_tree(&scratch.0) else {
        return;
    };
    let tree = tree.to_str().unwrap();
    let listing = in_isle(tree, &[], &["ls", "/", "/usr/bin"]);
    assert_eq!(status(&listing), 0, "{}", stderr(&listing));
    assert_eq!(stdout(&listing), "/:\nbin\netc\nusr\n\n/usr/bin:\nhead\n");
    // PATH lookup finds the relative link in /usr/bin; both links reach
    // the tree's busybox and its /etc/passwd, not the host's.
    let absolute = in_isle(tree, &[], &["head", "-n1", "/etc/absolute"]);
    assert_eq!(status(&absolute), 0, "{}", stderr(&absolute));
    assert_eq!(stdout(&absolute), "root:x:0:0::/:/bin/sh\n");
    // `..` stops at the tree's root: the host's /etc/hostname is not there.
    let escape = in_isle(tree, &[], &["cat", "/etc/escape"]);
    assert_eq!(status(&escape), 1);
    assert!(
        stderr(&escape).contains("No such file or directory"),
        "{}",
        stderr(&escape)
    );
    let shell = in_isle(
        tree,
        &["-w", "/usr/bin"],
        &["sh", "-c", "echo $0 $PWD; cd /etc; echo $PWD"],
    );
    assert_eq!(status(&shell), 0, "{}", stderr(&shell));
    assert_eq!(stdout(&shell), "sh /usr/bin\n/etc\n");
}

#[test]
fn bad_root_filesystem_arguments_get_one_line_errors() {
    let scratch = Scratch::new("errors");
    let Some(tree) = busybox_tree(&scratch.0) else {
        return;
    };
    let tree = tree.to_str().unwrap();
    let missing = format!("{}/missing", scratch.0.display());
    let file = format!("{tree}/etc/passwd");
    let bad_option = format!("{tree}:bogus");
    let volume_at_root = format!("{tree}:/");
    let cases: [(Vec<&str>, i32, &[&str]); 9] = [
        (
            vec!["--rootfs", &missing, "ls"],
            2,
            &["--rootfs", "no such directory"],
        ),
        (vec!["--rootfs", &file, "ls"], 2, &["is not a directory"]),
        (
            vec!["--rootfs", &bad_option, "ls"],
            2,
            &["unknown option 'bogus'", "DIR:rw"],
        ),
        (
            vec!["--rootfs", tree, "nosuch"],
            127,
            &["nosuch", "no such file in the isle's PATH"],
        ),
        (
            vec!["--rootfs", tree, "/bin/nosuch"],
            127,
            &["no such file in the root filesystem"],
        ),
        (
            vec!["--rootfs", tree, "-u", "nosuch", "ls"],
            2,
            &["no user 'nosuch'", "/etc/passwd"],
        ),
        (
            vec!["--rootfs", tree, "-w", "relative", "ls"],
            2,
            &["-w relative", "absolute"],
        ),
        (
            vec!["--rootfs", tree, "-w", "/nonexistent", "ls"],
            2,
            &["-w /nonexistent", "no such directory"],
        ),
        (
            vec!["--rootfs", tree, "-v", &volume_at_root, "ls"],
            2,
            &["give one"],
        ),
    ];
    for (flags, code, needles) in cases {
        let mut args = vec!["run"];
        args.extend(flags);
        let output = run(&args);
        assert_one_line_error(&output, code, needles);
    }
}
