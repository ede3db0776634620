//! Projects: `atoll init`, `atoll build` and `atoll run DIR` with its
//! atoll.toml, for Rust and C, end to end with real toolchains.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atoll-project-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `atoll ARGS` in `dir`, with the image store of the test this belongs to
/// (in its scratch directory, above the project's).
fn atoll_in(dir: &Path, args: &[&str]) -> Output {
    let _slot = isle_slot();
    let scratch = dir
        .ancestors()
        .find(|dir| {
            dir.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("atoll-project-"))
        })
        .unwrap_or(dir);
    atoll()
        .current_dir(dir)
        .env("ATOLL_HOME", scratch.join("store"))
        .env("XDG_CACHE_HOME", scratch.join("cache"))
        .args(args)
        .output()
        .expect("atoll runs")
}

fn round_trip(lang: &str) {
    let base = scratch(lang);
    let created = atoll_in(&base, &["init", "demo", "--lang", lang]);
    assert_eq!(status(&created), 0, "{}", stderr(&created));
    assert!(stdout(&created).contains("atoll build && atoll run ."));
    let project = base.join("demo");
    for file in ["atoll.toml", "README.md", ".gitignore"] {
        assert!(project.join(file).is_file(), "{file}");
    }
    let early = atoll_in(&project, &["run", "."]);
    assert_one_line_error(&early, 2, &["isn't built yet", "atoll build"]);

    let built = atoll_in(&project, &["build"]);
    assert_eq!(status(&built), 0, "{}", stderr(&built));
    assert!(
        stdout(&built).contains("built demo 0.1.0"),
        "{}",
        stdout(&built)
    );
    assert!(stdout(&built).contains("static x86_64"));

    let ran = atoll_in(&project, &["run", "."]);
    assert_eq!(status(&ran), 0, "{}", stderr(&ran));
    assert_eq!(stdout(&ran), "Hello, world, from demo in an isle\n");
    // Flags win over the manifest; arguments replace its args.
    let overridden = atoll_in(
        &project,
        &["run", "-e", "GREETING=Hi", "-m", "96M", ".", "you", "there"],
    );
    assert_eq!(status(&overridden), 0, "{}", stderr(&overridden));
    assert_eq!(stdout(&overridden), "Hi, you there, from demo in an isle\n");
    // From elsewhere, by path.
    let by_path = atoll_in(&base, &["run", "demo"]);
    assert_eq!(stdout(&by_path), "Hello, world, from demo in an isle\n");

    let again = atoll_in(&base, &["init", "demo", "--lang", lang]);
    assert_one_line_error(&again, 2, &["exists and isn't empty"]);

    // The build made an image: it runs from the store, anywhere.
    assert!(
        stdout(&built).contains("image demo:0.1.0 (sha256:"),
        "{}",
        stdout(&built)
    );
    let listed = atoll_in(&base, &["images", "-q"]);
    assert_eq!(stdout(&listed), "demo:0.1.0\n");
    let elsewhere = base.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for reference in ["demo:0.1.0", "demo"] {
        let from_store = atoll_in(&elsewhere, &["run", reference, "store"]);
        assert_eq!(status(&from_store), 0, "{}", stderr(&from_store));
        assert_eq!(stdout(&from_store), "Hello, store, from demo in an isle\n");
    }
    let kernels = atoll_in(&base, &["kernels"]);
    // One kernel: the built-in one, which the image uses too.
    let text = stdout(&kernels);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("built in, demo:0.1.0"), "{text}");
    let listed: serde_json::Value =
        serde_json::from_str(&stdout(&atoll_in(&base, &["kernels", "-o", "json"]))).unwrap();
    assert_eq!(listed[0]["used_by"][1], "demo:0.1.0", "{listed}");
    let tagged = atoll_in(&base, &["tag", "demo:0.1.0", "demo:stable"]);
    assert_eq!(status(&tagged), 0, "{}", stderr(&tagged));
    let removed = atoll_in(&base, &["rmi", "demo:0.1.0", "demo:stable"]);
    assert_eq!(
        stdout(&removed),
        "untagged demo:0.1.0\nuntagged demo:stable\n"
    );
    let gone = atoll_in(&elsewhere, &["run", "demo:0.1.0"]);
    assert_one_line_error(&gone, 127, &["demo:0.1.0"]);
    let pruned = atoll_in(&base, &["prune"]);
    assert!(
        stdout(&pruned).starts_with("removed 4 blob(s)"),
        "{}",
        stdout(&pruned)
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// `./FILE ARGS` in `dir` with `path` as PATH (and the test's store).
fn exec_in(dir: &Path, file: &str, args: &[&str], path: &str) -> Output {
    let _slot = isle_slot();
    let scratch = dir.parent().unwrap();
    std::process::Command::new(file)
        .current_dir(dir)
        .env("PATH", path)
        .env("ATOLL_HOST_CONFIG", common::NO_HOST_CONFIG)
        .env("ATOLL_HOME", scratch.join("store"))
        .env("XDG_CACHE_HOME", scratch.join("cache"))
        .args(args)
        .output()
        .expect("the .isle file runs")
}

const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// binfmt_misc at BINFMT_MISC, mounted now (as systemd does at boot) if it
/// wasn't, or why it can't be.
fn mount_binfmt_misc() -> Result<(), String> {
    if Path::new(BINFMT_MISC).join("register").exists() {
        return Ok(());
    }
    let c_string = |text: &str| std::ffi::CString::new(text).unwrap();
    let (kind, target) = (c_string("binfmt_misc"), c_string(BINFMT_MISC));
    // SAFETY: NUL-terminated strings that outlive the call; no data.
    let mounted = unsafe {
        libc::mount(
            kind.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if mounted == 0 {
        return Ok(());
    }
    Err(format!(
        "the binfmt part: mounting binfmt_misc at {BINFMT_MISC} failed: {}",
        std::io::Error::last_os_error()
    ))
}

#[test]
fn an_image_with_files_packs_into_one_runnable_file() {
    let Some(busybox) = require(static_busybox()) else {
        return;
    };
    let base = scratch("pack");
    let project = base.join("site");
    std::fs::create_dir_all(project.join("www")).unwrap();
    std::fs::write(project.join("www/index.html"), "hello from files\n").unwrap();
    std::fs::write(
        project.join("atoll.toml"),
        format!(
            "[app]\nname = \"site\"\nversion = \"1.0\"\n\
             [build]\ncommand = \"cp {busybox} busybox\"\nfiles = [\"www:/srv/www\"]\n\
             [run]\nprogram = \"busybox\"\nargs = [\"cat\", \"/srv/www/index.html\"]\n"
        ),
    )
    .unwrap();
    let built = atoll_in(&project, &["build"]);
    assert_eq!(status(&built), 0, "{}", stderr(&built));
    // The files are in the image: they come along wherever it runs.
    std::fs::write(project.join("www/index.html"), "changed after the build\n").unwrap();
    let from_store = atoll_in(&base, &["run", "site:1.0"]);
    assert_eq!(status(&from_store), 0, "{}", stderr(&from_store));
    assert_eq!(stdout(&from_store), "hello from files\n");
    let read_only = atoll_in(&base, &["run", "site:1.0", "touch", "/srv/www/x"]);
    assert_ne!(status(&read_only), 0, "a files layer is read-only");
    // The project itself shows its directory as it is now.
    let direct = atoll_in(&base, &["run", "site"]);
    assert_eq!(stdout(&direct), "changed after the build\n");
    std::fs::write(project.join("www/index.html"), "hello from files\n").unwrap();

    // One file, the same bytes from the image or from the project.
    let packed = atoll_in(&base, &["pack", "site:1.0", "-o", "site.isle"]);
    assert_eq!(status(&packed), 0, "{}", stderr(&packed));
    assert!(stdout(&packed).starts_with("packed site:1.0 into site.isle"));
    let again = atoll_in(&base, &["pack", "site", "-o", "again.isle"]);
    assert_eq!(status(&again), 0, "{}", stderr(&again));
    let bytes = std::fs::read(base.join("site.isle")).unwrap();
    assert_eq!(bytes, std::fs::read(base.join("again.isle")).unwrap());
    assert!(bytes.starts_with(b"#!/usr/bin/env -S atoll run\n\x7fISLE01\n"));

    let ran = atoll_in(&base, &["run", "site.isle"]);
    assert_eq!(stdout(&ran), "hello from files\n", "{}", stderr(&ran));
    let exit = atoll_in(&base, &["run", "./site.isle", "sh", "-c", "exit 7"]);
    assert_eq!(status(&exit), 7, "{}", stderr(&exit));
    // Through its shebang, with atoll in PATH.
    let atoll_dir = Path::new(env!("CARGO_BIN_EXE_atoll")).parent().unwrap();
    let with_atoll = format!("{}:/usr/bin:/bin", atoll_dir.display());
    let shebang = exec_in(
        &base,
        "./site.isle",
        &["echo", "via", "shebang"],
        &with_atoll,
    );
    assert_eq!(stdout(&shebang), "via shebang\n", "{}", stderr(&shebang));

    // A damaged file is refused by digest.
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    std::fs::write(base.join("damaged.isle"), &damaged).unwrap();
    let refused = atoll_in(&base, &["run", "damaged.isle"]);
    assert_one_line_error(&refused, 2, &["digest"]);

    // Loaded into a store that had lost it.
    assert_eq!(status(&atoll_in(&base, &["rmi", "site:1.0"])), 0);
    assert_eq!(status(&atoll_in(&base, &["prune"])), 0);
    let loaded = atoll_in(&base, &["load", "site.isle"]);
    assert_eq!(status(&loaded), 0, "{}", stderr(&loaded));
    assert_eq!(stdout(&atoll_in(&base, &["images", "-q"])), "site:1.0\n");
    let from_loaded = atoll_in(&base, &["run", "site:1.0"]);
    assert_eq!(stdout(&from_loaded), "hello from files\n");

    // binfmt_misc: `./site.isle` with no atoll in PATH. The test mounts it
    // where it isn't; one that can't be mounted is a missing prerequisite.
    let binfmt = require(mount_binfmt_misc()).is_some();
    if binfmt {
        let installed = atoll_in(&base, &["binfmt", "install"]);
        assert_eq!(status(&installed), 0, "{}", stderr(&installed));
        let registered = exec_in(
            &base,
            "./site.isle",
            &["echo", "via", "binfmt"],
            "/usr/bin:/bin",
        );
        let removed = atoll_in(&base, &["binfmt", "uninstall"]);
        assert_eq!(
            stdout(&registered),
            "via binfmt\n",
            "{}",
            stderr(&registered)
        );
        assert_eq!(status(&removed), 0, "{}", stderr(&removed));
        let unregistered = exec_in(&base, "./site.isle", &["echo"], "/usr/bin:/bin");
        assert_ne!(status(&unregistered), 0, "runs only while registered");
    }
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn a_corrupted_blob_is_refused_by_its_digest() {
    let base = scratch("corrupt");
    let created = atoll_in(&base, &["init", "demo", "--lang", "c"]);
    assert_eq!(status(&created), 0, "{}", stderr(&created));
    let built = atoll_in(&base.join("demo"), &["build"]);
    assert_eq!(status(&built), 0, "{}", stderr(&built));
    // Flip the last byte of every blob that is an ELF (kernel and program).
    let blobs = base.join("store/blobs/sha256");
    let mut flipped = 0;
    for entry in std::fs::read_dir(&blobs).unwrap().flatten() {
        let mut bytes = std::fs::read(entry.path()).unwrap();
        if bytes.starts_with(b"\x7fELF") {
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            std::fs::write(entry.path(), bytes).unwrap();
            flipped += 1;
        }
    }
    assert_eq!(flipped, 2);
    let refused = atoll_in(&base, &["run", "demo:0.1.0"]);
    assert_one_line_error(&refused, 2, &["corrupt", "atoll rmi"]);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn a_rust_project_inits_builds_and_runs() {
    round_trip("rust");
}

#[test]
fn a_c_project_inits_builds_and_runs() {
    round_trip("c");
}

#[test]
fn manifest_mistakes_name_the_file_and_line() {
    let base = scratch("mistakes");
    let project = base.join("broken");
    std::fs::create_dir_all(&project).unwrap();
    let manifest = project.join("atoll.toml");
    for (text, needles) in [
        (
            "[app]\nname = \"x\"\nversion = \"1\"\n[build]\nlang = \"cobol\"\n",
            &["atoll.toml", "line 5"][..],
        ),
        (
            "[app]\nname = \"x\"\nversion = \"1\"\n[build]\nlang = \"c\"\n[kernel]\nversion = \"9.9\"\n",
            &["carries kernel"][..],
        ),
    ] {
        std::fs::write(&manifest, text).unwrap();
        let built = atoll_in(&base, &["build", "broken"]);
        assert_one_line_error(&built, 2, needles);
    }
    let bad_name = atoll_in(&base, &["init", "two words"]);
    assert_one_line_error(&bad_name, 2, &["letters, digits"]);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn shell_completions_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let output = atoll().args(["completions", shell]).output().unwrap();
        assert_eq!(status(&output), 0, "{}", stderr(&output));
        let script = stdout(&output);
        for command in ["run", "build", "push", "pull", "ps", "stop", "images"] {
            assert!(script.contains(command), "{shell}: no {command}");
        }
    }
    // The bash script is valid bash.
    let bash = atoll().args(["completions", "bash"]).output().unwrap();
    let dir = scratch("completions");
    let path = dir.join("atoll.bash");
    std::fs::write(&path, &bash.stdout).unwrap();
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", stderr(&checked));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_command_has_help_with_examples() {
    let help = stdout(&atoll().arg("--help").output().unwrap());
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|line| !line.starts_with("Commands:"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .collect();
    assert!(commands.len() >= 20, "{help}");
    for command in commands {
        let output = atoll().args([command, "--help"]).output().unwrap();
        assert_eq!(status(&output), 0, "{command}: {}", stderr(&output));
        let text = stdout(&output);
        assert!(
            text.contains("\nExample") && text.contains(&format!("atoll {command}")),
            "`atoll {command} --help` shows no example of itself:\n{text}"
        );
    }
}
