//! Images through a real OCI registry (Debian's docker-registry, on a free
//! loopback port): push, pull, run by reference, search, basic auth,
//! corrupted blobs and unreachable registries.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::registry::{Registry, Workspace};
use common::*;

#[test]
fn rust_and_c_images_go_through_a_registry_and_back() {
    let Some(registry) = Registry::start("round-trip", None) else {
        return;
    };
    let work = Workspace::new("round-trip");
    for (name, lang) in [("rusty", "rust"), ("seesaw", "c")] {
        work.project(name, lang);
        let remote = format!("{}/me/{name}:0.1", registry.address);
        let tagged = work.run(&["tag", &format!("{name}:0.1.0"), &remote]);
        assert_eq!(status(&tagged), 0, "{}", stderr(&tagged));
        let pushed = work.run(&["push", &remote]);
        assert_eq!(status(&pushed), 0, "{}", stderr(&pushed));
        // Again: nothing new to send, the same answer.
        assert_eq!(status(&work.run(&["push", &remote])), 0);
        // Gone from here, it comes back by reference.
        let removed = work.run(&["rmi", &remote, &format!("{name}:0.1.0")]);
        assert_eq!(status(&removed), 0, "{}", stderr(&removed));
        assert_eq!(status(&work.run(&["prune"])), 0);
        assert_eq!(stdout(&work.run(&["images", "-q"])), "");
        let ran = work.run(&["run", &remote, "registry"]);
        assert_eq!(status(&ran), 0, "{}", stderr(&ran));
        assert_eq!(
            stdout(&ran),
            format!("Hello, registry, from {name} in an isle\n")
        );
        assert_eq!(stdout(&work.run(&["images", "-q"])), format!("{remote}\n"));
        let pulled = work.run(&["pull", &remote]);
        assert_eq!(status(&pulled), 0, "{}", stderr(&pulled));
        assert_eq!(status(&work.run(&["rmi", &remote])), 0);
    }
    let search = work.run(&["search", &registry.address]);
    assert_eq!(status(&search), 0, "{}", stderr(&search));
    let text = stdout(&search);
    assert!(
        text.contains("me/rusty  0.1") && text.contains("me/seesaw  0.1"),
        "{text}"
    );
    let filtered = stdout(&work.run(&["search", &registry.address, "saw"]));
    assert!(
        !filtered.contains("rusty") && filtered.contains("me/seesaw"),
        "{filtered}"
    );
    let missing = work.run(&["pull", &format!("{}/me/nothing:1", registry.address)]);
    assert_one_line_error(&missing, 125, &["no such image or tag"]);
}

#[test]
fn a_registry_with_basic_auth_wants_the_right_password() {
    let Some(registry) = Registry::start("auth", Some(("me", "right horse"))) else {
        return;
    };
    let work = Workspace::new("auth");
    work.project("guarded", "c");
    let remote = format!("{}/me/guarded:1", registry.address);
    assert_eq!(status(&work.run(&["tag", "guarded:0.1.0", &remote])), 0);
    let anonymous = work.run(&["push", &remote]);
    assert_one_line_error(&anonymous, 125, &["refused the credentials", "atoll login"]);
    let login = |password: &str| {
        work.atoll(
            &work.dir,
            &["login", &registry.address, "-u", "me", "--password-stdin"],
            &format!("{password}\n"),
        )
    };
    let wrong = login("wrong staple");
    assert_one_line_error(&wrong, 125, &["refused the credentials"]);
    let right = login("right horse");
    assert_eq!(status(&right), 0, "{}", stderr(&right));
    let credentials = work.dir.join("store/auth.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&credentials)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let pushed = work.run(&["push", &remote]);
    assert_eq!(status(&pushed), 0, "{}", stderr(&pushed));
    let search = work.run(&["search", &registry.address]);
    assert!(
        stdout(&search).contains("me/guarded  1"),
        "{}",
        stdout(&search)
    );
}

#[test]
fn a_corrupted_blob_in_the_registry_is_refused() {
    let Some(registry) = Registry::start("corrupt", None) else {
        return;
    };
    let work = Workspace::new("corrupt");
    work.project("fragile", "c");
    let remote = format!("{}/me/fragile:1", registry.address);
    assert_eq!(status(&work.run(&["tag", "fragile:0.1.0", &remote])), 0);
    assert_eq!(status(&work.run(&["push", &remote])), 0);
    // Nothing local left: the pull must fetch every blob (blobs already
    // in the store are not fetched again).
    assert_eq!(status(&work.run(&["rmi", &remote, "fragile:0.1.0"])), 0);
    assert_eq!(status(&work.run(&["prune"])), 0);
    // Flip a byte of every ELF blob the registry keeps.
    let mut flipped = 0;
    let mut stack = vec![registry.dir.join("data")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|name| name == "data") {
                let mut bytes = std::fs::read(&path).unwrap();
                if bytes.starts_with(b"\x7fELF") {
                    let last = bytes.len() - 1;
                    bytes[last] ^= 0xff;
                    std::fs::write(&path, bytes).unwrap();
                    flipped += 1;
                }
            }
        }
    }
    assert_eq!(flipped, 2);
    let pulled = work.run(&["pull", &remote]);
    assert_eq!(status(&pulled), 125, "{}", stderr(&pulled));
    assert!(stderr(&pulled).contains("digest"), "{}", stderr(&pulled));
    assert_eq!(stdout(&work.run(&["images", "-q"])), "");
}

#[test]
fn an_unreachable_registry_is_a_clear_error_without_a_hang() {
    let work = Workspace::new("unreachable");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let pulled = work.run(&["pull", &format!("localhost:{port}/me/x:1")]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_one_line_error(&pulled, 125, &["unreachable", "check the address"]);
    let searched = work.run(&["search", &format!("localhost:{port}")]);
    assert_one_line_error(&searched, 125, &["unreachable"]);
}

#[test]
fn a_kernel_travels_alone_and_a_project_pins_it() {
    let Some(registry) = Registry::start("kernel", None) else {
        return;
    };
    let publisher = Workspace::new("kernel-publisher");
    let kernel = format!("{}/atoll/kernel:0.1.0", registry.address);
    let pushed = publisher.run(&["push", "--kernel", &kernel]);
    assert_eq!(status(&pushed), 0, "{}", stderr(&pushed));

    // Another machine (another store): a project that names the kernel
    // pulls it at build time.
    let user = Workspace::new("kernel-user");
    let made = user.run(&["init", "pinned", "--lang", "c"]);
    assert_eq!(status(&made), 0, "{}", stderr(&made));
    let manifest = user.dir.join("pinned/atoll.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let pin = |image: &str| {
        let pinned = text.replace("[kernel]\n", &format!("[kernel]\nimage = \"{image}\"\n"));
        assert_ne!(pinned, text);
        std::fs::write(&manifest, pinned).unwrap();
    };
    pin(&kernel);
    let built = user.atoll(&user.dir.join("pinned"), &["build"], "");
    assert_eq!(status(&built), 0, "{}", stderr(&built));
    let kernels = stdout(&user.run(&["kernels"]));
    assert!(
        kernels.contains(&format!("{kernel} (a kernel), pinned:0.1.0")),
        "{kernels}"
    );
    let ran = user.run(&["run", "pinned:0.1.0"]);
    assert_eq!(
        stdout(&ran),
        "Hello, world, from pinned in an isle\n",
        "{}",
        stderr(&ran)
    );
    let direct = user.run(&["run", "pinned"]);
    assert_eq!(
        stdout(&direct),
        "Hello, world, from pinned in an isle\n",
        "{}",
        stderr(&direct)
    );

    let missing = format!("{}/atoll/kernel:9.9", registry.address);
    pin(&missing);
    let refused = user.atoll(&user.dir.join("pinned"), &["build"], "");
    assert_one_line_error(&refused, 125, &["no such image or tag"]);
}

#[test]
fn a_cut_pull_resumes_and_a_bad_partial_is_refused() {
    let Some(registry) = Registry::start("resume", None) else {
        return;
    };
    let work = Workspace::new("resume");
    work.project("resumed", "c");
    let remote = format!("{}/me/resumed:1", registry.address);
    assert_eq!(status(&work.run(&["tag", "resumed:0.1.0", &remote])), 0);
    assert_eq!(status(&work.run(&["push", "-q", &remote])), 0);
    let inspected: serde_json::Value =
        serde_json::from_str(&stdout(&work.run(&["inspect", &remote]))).unwrap();
    let program = inspected["manifest"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|layer| layer["mediaType"] == "application/vnd.atoll.program.v1+elf")
        .unwrap()
        .clone();
    let hex = program["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let blob_path = work.dir.join("store/blobs/sha256").join(hex);
    let whole = std::fs::read(&blob_path).unwrap();
    let partial_path = blob_path.with_extension("partial");
    let forget = || {
        assert_eq!(status(&work.run(&["rmi", &remote, "resumed:0.1.0"])), 0);
        assert_eq!(status(&work.run(&["prune"])), 0);
    };

    // A download cut off after a wrong first half: resumed, then refused.
    forget();
    let mut wrong = whole[..whole.len() / 2].to_vec();
    wrong[0] ^= 0xff;
    std::fs::write(&partial_path, &wrong).unwrap();
    let refused = work.run(&["pull", &remote]);
    assert_one_line_error(&refused, 125, &["doesn't match its digest"]);
    assert!(!partial_path.exists(), "a bad partial download is dropped");
    // Pulled again, whole.
    let pulled = work.run(&["pull", "-q", &remote]);
    assert_eq!(status(&pulled), 0, "{}", stderr(&pulled));
    assert_eq!(std::fs::read(&blob_path).unwrap(), whole);

    // A download cut off after a right first half: finished.
    assert_eq!(status(&work.run(&["rmi", &remote])), 0);
    assert_eq!(status(&work.run(&["prune"])), 0);
    std::fs::write(&partial_path, &whole[..whole.len() / 2]).unwrap();
    let resumed = work.run(&["pull", &remote]);
    assert_eq!(status(&resumed), 0, "{}", stderr(&resumed));
    assert_eq!(std::fs::read(&blob_path).unwrap(), whole);
    let ran = work.run(&["run", &remote, "again"]);
    assert_eq!(stdout(&ran), "Hello, again, from resumed in an isle\n");
}
