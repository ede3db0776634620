//! A minimal Debian root filesystem with python3, made by mmdebstrap from
//! the host's own apt suite once and kept under target/.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use super::*;

/// The host's Debian suite, so mmdebstrap fetches from the apt sources the
/// host already has.
fn host_suite() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
                .map(|name| name.trim_matches('"').to_string())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "bookworm".to_string())
}

/// One build of the Debian tree per test binary at a time.
static DEBIAN_TREE: Mutex<()> = Mutex::new(());

/// A minimal Debian tree with python3, made once and kept under target/
/// (a `.complete` marker says the build finished).
pub fn debian_tree() -> Option<PathBuf> {
    let mmdebstrap = require(tool("mmdebstrap", "mmdebstrap"))?;
    let _building = DEBIAN_TREE.lock().unwrap_or_else(|e| e.into_inner());
    let suite = host_suite();
    let cache = std::env::current_dir()
        .unwrap()
        .join("target")
        .join("rootfs-cache");
    let tree = cache.join(format!("debian-{suite}"));
    if tree.join(".complete").exists() {
        return Some(tree);
    }
    let partial = cache.join(format!("debian-{suite}.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tree);
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&cache).unwrap();
    let output = Command::new(mmdebstrap)
        .args(["--quiet", "--variant=minbase", "--include=python3"])
        .arg(&suite)
        .arg(&partial)
        .output()
        .expect("mmdebstrap starts");
    assert!(
        output.status.success(),
        "mmdebstrap {suite}: {}",
        stderr(&output)
    );
    std::fs::write(partial.join(".complete"), b"").unwrap();
    std::fs::rename(&partial, &tree).unwrap();
    Some(tree)
}
