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

fn atoll_in(dir: &Path, args: &[&str]) -> Output {
    let _slot = isle_slot();
    atoll()
        .current_dir(dir)
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
