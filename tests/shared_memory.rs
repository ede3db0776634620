//! MAP_SHARED file mappings, msync, mremap, shm_open and named semaphores
//! in isles (tests/programs/c/shmap.c), against the host's view of the
//! files and against native runs.
//!
//! On KVM the isle maps the file's own pages, so writes go both ways while
//! the mapping lives. Under QEMU (what `auto` picks without /dev/kvm) only
//! files in the isle's private /dev/shm can be mapped shared, as copies
//! written back at msync and munmap; the tests check that there instead.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;

const PAGE: usize = 4096;

fn on_kvm() -> bool {
    machine_backend() == "kvm"
}

/// A fresh directory, removed when dropped; the isle mounts the cwd, so
/// tests run the isle there.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "atoll-shm-{}-{}-{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(std::fs::canonicalize(&path).unwrap())
    }

    /// A two-page file starting with "initial".
    fn file(&self, name: &str) -> PathBuf {
        let path = self.0.join(name);
        let mut bytes = vec![b'.'; 2 * PAGE];
        bytes[..7].copy_from_slice(b"initial");
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `atoll run [FLAGS] shmap ARGS` in `dir` (waiting for a free core:
/// other isles may hold them).
fn shmap(flavor: Flavor, dir: &Path, flags: &[&str], args: &[&str]) -> std::process::Output {
    let _slot = isle_slot();
    atoll()
        .current_dir(dir)
        .args(["run", "--wait"])
        .args(flags)
        .arg(program(flavor, "shmap"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("atoll runs")
}

fn native(flavor: Flavor, dir: &Path, args: &[&str]) -> String {
    let _slot = isle_slot();
    let output = Command::new(program(flavor, "shmap"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{flavor} natively: {}",
        stdout(&output)
    );
    stdout(&output)
}

#[test]
fn shared_writes_reach_the_file_and_a_second_mapping() {
    for &flavor in Flavor::C {
        let dir = Scratch::new("write");
        let file = dir.file("data");
        let path = file.to_str().unwrap();
        let isle = shmap(flavor, &dir.0, &[], &["write", path]);
        if !on_kvm() {
            // QEMU can't show a host file's pages: refused, not faked.
            assert_eq!(stdout(&isle), "mmap: No such device\n", "{flavor}");
            continue;
        }
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        let contents = std::fs::read(&file).unwrap();
        assert_eq!(&contents[..17], b"isle wrote page 0", "{flavor}");
        assert_eq!(&contents[PAGE..PAGE + 17], b"isle wrote page 1", "{flavor}");
        let expected = native(
            flavor,
            &dir.0,
            &["write", dir.file("data").to_str().unwrap()],
        );
        assert_eq!(stdout(&isle), expected, "{flavor}");
    }
}

#[test]
fn host_writes_reach_the_isles_mapping() {
    // Under QEMU a host file's pages can't be shared: only KVM shows them.
    if !require_kvm() {
        return;
    }
    for &flavor in Flavor::C {
        let dir = Scratch::new("watch");
        let file = dir.file("data");
        let _slot = isle_slot();
        let mut child = atoll()
            .current_dir(&dir.0)
            .args(["run", "--wait"])
            .arg(program(flavor, "shmap"))
            .args(["watch", file.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "mapped: initial");
        // Another process writes the file while the isle has it mapped.
        let host = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        host.write_all_at(b"host wrote", 0).unwrap();
        assert_eq!(
            lines.next().unwrap().unwrap(),
            "saw: host wrote",
            "{flavor}"
        );
        assert!(child.wait().unwrap().success());
    }
}

#[test]
fn mremap_and_msync_follow_linux() {
    for &flavor in Flavor::C {
        let dir = Scratch::new("mremap");
        // On KVM a host file; under QEMU a file of the private /dev/shm.
        let path = if on_kvm() {
            dir.file("data").to_str().unwrap().to_string()
        } else {
            "/dev/shm/mremap-test".to_string()
        };
        let isle = shmap(flavor, &dir.0, &[], &["mremap", &path]);
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        let expected = if on_kvm() {
            let contents = std::fs::read(&path).unwrap();
            assert_eq!(&contents[PAGE..PAGE + 5], b"grown", "{flavor}");
            native(
                flavor,
                &dir.0,
                &["mremap", dir.file("data").to_str().unwrap()],
            )
        } else {
            let native_file = dir.0.join("native");
            native(flavor, &dir.0, &["mremap", native_file.to_str().unwrap()])
        };
        assert_eq!(stdout(&isle), expected, "{flavor}");
    }
}

#[test]
fn read_only_fds_and_mounts_refuse_writable_shared_mappings() {
    for &flavor in Flavor::C {
        let dir = Scratch::new("readonly");
        let file = dir.file("data");
        let expected = native(flavor, &dir.0, &["readonly", file.to_str().unwrap()]);
        let isle = shmap(flavor, &dir.0, &[], &["readonly", file.to_str().unwrap()]);
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        if on_kvm() {
            assert_eq!(stdout(&isle), expected, "{flavor}");
        } else {
            // A read-only shared mapping is a copy there, as before: it
            // doesn't know the fd can't write.
            let expected = expected.replace(
                "mprotect writable: Permission denied",
                "mprotect writable: ok",
            );
            assert_eq!(stdout(&isle), expected, "{flavor}");
        }
        // On a read-only mount the file can't even be opened for writing.
        let volume = format!("{}:/ro:ro", dir.0.display());
        let isle = shmap(flavor, &dir.0, &["-v", &volume], &["readonly", "/ro/data"]);
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        let mprotect = if on_kvm() { "Permission denied" } else { "ok" };
        assert_eq!(
            stdout(&isle),
            format!(
                "open O_RDWR: Read-only file system\nshared writable: Permission denied\n\
                 shared read-only: initial\nmprotect writable: {mprotect}\n\
                 private writable: mapped\nwrite-only fd: Permission denied\n"
            ),
            "{flavor}"
        );
    }
}

/// Every atoll-tmp directory (private /tmp and /dev/shm) of atoll process `pid`.
fn private_dirs_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("atoll-tmp-{pid}-");
    let mut found = Vec::new();
    for base in [Path::new("/dev/shm").to_path_buf(), std::env::temp_dir()] {
        for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                found.push(entry.path());
            }
        }
    }
    found
}

#[test]
fn shm_open_maps_a_private_dev_shm_gone_after_exit() {
    let host_name = format!("atoll-host-probe-{}", std::process::id());
    let host_file = Path::new("/dev/shm").join(&host_name);
    let host_visible = std::fs::write(&host_file, b"host").is_ok();
    for &flavor in Flavor::C {
        let dir = Scratch::new("shm");
        let _slot = isle_slot();
        let child = atoll()
            .current_dir(&dir.0)
            .args(["run", "--wait"])
            .arg(program(flavor, "shmap"))
            .args(["shm", &format!("/{host_name}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let output = child.wait_with_output().unwrap();
        assert_eq!(status(&output), 0, "{flavor}: {}", stderr(&output));
        // Under QEMU each mapping is a copy: the second sees the first's
        // writes only once written back.
        let (second, first) = if on_kvm() {
            ("written through the first", "and back through the second")
        } else {
            ("", "written through the first")
        };
        assert_eq!(
            stdout(&output),
            format!(
                "second sees: {second}\nfirst sees: {first}\nin /dev/shm: yes\n\
                 after unlink: No such file or directory\nmapping survives: {}\n\
                 host's /dev/shm: No such file or directory\n",
                &first[..7]
            ),
            "{flavor}"
        );
        assert_eq!(private_dirs_of(pid), Vec::<PathBuf>::new(), "{flavor}");
    }
    if host_visible {
        let _ = std::fs::remove_file(&host_file);
    }
}

#[test]
fn named_semaphores_work_across_threads() {
    for &flavor in Flavor::C {
        let dir = Scratch::new("sem");
        for mode in ["sem", "sem-threads"] {
            let expected = native(flavor, &dir.0, &[mode]);
            let isle = shmap(flavor, &dir.0, &[], &[mode]);
            assert_eq!(status(&isle), 0, "{flavor} {mode}: {}", stderr(&isle));
            assert_eq!(stdout(&isle), expected, "{flavor} {mode}");
            assert_eq!(stderr(&isle), "", "{flavor} {mode}");
        }
    }
}
