//! Processes: fork, wait and pipes between an isle's processes, each
//! process an isle of its own on a host process of its own, compared with
//! a native run.

mod common;

use std::process::Command;

use common::*;

/// fork, a pipe from child to parent, exit and signal statuses, WNOHANG,
/// a child's own copy of memory, an fd's offset shared across the fork,
/// getppid, a grandchild, ECHILD: as natively, static and dynamic.
#[test]
fn forked_children_run_and_are_waited_for_as_natively() {
    let scratch = Scratch::new("fork");
    for flavor in Flavor::C.iter().chain(Flavor::DYNAMIC) {
        let forkwait = program(*flavor, "forkwait");
        let native = {
            let _slot = isle_slot();
            Command::new(&forkwait)
                .current_dir(&scratch.0)
                .output()
                .unwrap()
        };
        assert!(native.status.success(), "{flavor}: {}", stdout(&native));
        let isle = {
            let _slot = isle_slot();
            atoll()
                .arg("run")
                .arg(&forkwait)
                .current_dir(&scratch.0)
                .output()
                .unwrap()
        };
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        assert_eq!(stdout(&isle), stdout(&native), "{flavor}");
        assert!(stdout(&isle).contains("exit(3): waited, exited 3\n"));
        assert_eq!(stderr(&isle), "", "{flavor}");
    }
}
