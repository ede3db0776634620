//! Processes: fork, wait and pipes between an isle's processes, each
//! process an isle of its own on a host process of its own, compared with
//! a native run.

mod common;

use std::process::Command;

use common::*;

/// fork, a pipe from child to parent, exit and signal statuses, WNOHANG,
/// a child's own copy of memory, an fd's offset shared across the fork,
/// getppid, a grandchild, the time a child used, ECHILD: as natively,
/// static and dynamic.
#[test]
fn forked_children_run_and_are_waited_for_as_natively() {
    compare_in_every_flavor("forkwait", "exit(3): waited, exited 3\n");
}

/// Process groups and sessions as shells use them, a signal to a group,
/// and waitid's siginfo: as natively.
#[test]
fn process_groups_sessions_and_waitid_as_natively() {
    compare_in_every_flavor("pgroups", "leader: killed by signal 15\n");
}

/// Memory and futexes shared between processes: MAP_SHARED anonymous
/// memory, process-shared semaphores and mutexes, shm_open, a named
/// semaphore, a timed-out wait: as natively.
#[test]
fn processes_share_memory_and_futexes_as_natively() {
    compare_in_every_flavor(
        "sharedmem",
        "process-shared mutex: counter 40000 of 40000, child status 0\n",
    );
}

/// prctl(PR_SET_PDEATHSIG): it reads back, a fork's child starts without
/// one, and an orphan gets its signal when its parent ends: as natively.
#[test]
fn a_parent_death_signal_comes_as_natively() {
    compare_in_every_flavor("pdeath", "the orphan got signal 15\n");
}

/// libc's process calls as libc-test's functional tests try them: popen
/// (reading and writing), posix_spawnp (with a file action), vfork then
/// exec, execle's environment, stdio flushed by exit, daemon, a thread's
/// key destructor at pthread_exit: as natively.
#[test]
fn libc_process_calls_work_as_natively() {
    compare_in_every_flavor("libcprocs", "pthread_exit ran the key's destructor: 1\n");
}

/// ppoll, pselect and epoll_pwait take their signal mask for the call: a
/// signal blocked otherwise, sent by a child, ends each with EINTR: as
/// natively.
#[test]
fn waits_take_their_signal_mask_as_natively() {
    compare_in_every_flavor(
        "waitmask",
        "epoll_pwait: -1 EINTR, handled 1, SIGUSR1 blocked again 1\n",
    );
}

/// kill -9 -1 in a shell ends every other process of the isle (its two
/// background jobs), not the shell itself, as kill(-1) does in a pid
/// namespace of its own. Not run natively: there it would signal every
/// process of the host's user.
#[test]
fn kill_of_minus_one_ends_every_other_process_of_the_isle() {
    let Some(busybox) = require(tool("/bin/busybox", "busybox-static")) else {
        return;
    };
    let _slot = isle_slot();
    let script = "sleep 30 & sleep 30 & sleep 0.3; kill -9 -1; echo kill: $?; wait; \
                  echo jobs ended; kill -0 -1 2>/dev/null; echo none left: $?";
    let isle = atoll()
        .arg("run")
        .arg(&busybox)
        .args(["sh", "-c", script])
        .output()
        .unwrap();
    assert_eq!(status(&isle), 0, "{}", stderr(&isle));
    assert_eq!(stdout(&isle), "kill: 0\njobs ended\nnone left: 1\n");
}

/// Runs C program `name` natively and in an isle, static and dynamic: the
/// same status and output, which holds `expected`.
fn compare_in_every_flavor(name: &str, expected: &str) {
    let scratch = Scratch::new(name);
    for flavor in Flavor::C.iter().chain(Flavor::DYNAMIC) {
        let (native, isle) = both(&scratch.0, program(*flavor, name), &[]);
        assert!(native.status.success(), "{flavor}: {}", stdout(&native));
        assert_eq!(status(&isle), 0, "{flavor}: {}", stderr(&isle));
        assert_eq!(stdout(&isle), stdout(&native), "{flavor}");
        assert!(
            stdout(&isle).contains(expected),
            "{flavor}: {}",
            stdout(&isle)
        );
        assert_eq!(stderr(&isle), "", "{flavor}");
    }
}

/// busybox sh as a user's scripts use it, each script compared with a
/// native run: pipelines, subshells, command substitution, background
/// jobs and wait, trap, kill of a child, a script file, sh -c in sh -c (Debian's dash, a
/// dynamic program), find -exec, xargs, timeout, exit statuses.
#[test]
fn shell_scripts_run_as_natively() {
    let Some(busybox) = require(tool("/bin/busybox", "busybox-static")) else {
        return;
    };
    let scratch = Scratch::new("shell");
    std::fs::write(
        scratch.0.join("script.sh"),
        "#!/bin/busybox sh\necho \"script args: $*\"\nexit 5\n",
    )
    .unwrap();
    std::fs::set_permissions(
        scratch.0.join("script.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let scripts = [
        "echo a | tr a b; printf 'x\\ny\\nz\\n' | sort -r | head -n 1",
        "(exit 4); echo \"subshell $?\"; (cd / && pwd); false | true; echo \"pipeline $?\"",
        "x=$(echo sub); echo \"got $x $(echo $(echo nested))\"",
        "sleep 0.1 & echo started; wait; echo \"waited $?\"",
        "trap 'echo trapped' USR1; kill -USR1 $$; echo after",
        "sleep 5 & kill $!; wait $!; echo \"terminated $?\"; sleep 5 & kill -9 $!; wait $!; echo \"killed $?\"",
        "./script.sh a b; echo \"script $?\"",
        "sh -c 'sh -c \"exit 3\"'; echo \"nested $?\"",
        "echo x > f.txt; find . -name f.txt -exec cat {} \\;; echo f.txt | xargs cat; rm f.txt",
        "timeout 5 echo in time; echo \"timeout $?\"",
        "for i in 1 2 3; do echo $i | cat; done; exit 7",
        "nosuchcommand 2>/dev/null; echo \"missing $?\"",
    ];
    for script in scripts {
        let (native, isle) = both(&scratch.0, &busybox, &["sh", "-c", script]);
        assert_eq!(
            isle.status.code(),
            native.status.code(),
            "{script}: {}",
            stderr(&isle)
        );
        assert_eq!(stdout(&isle), stdout(&native), "{script}");
    }
}

/// GNU make -j2 (its jobserver waits in pselect with SIGCHLD let through),
/// recipes that run shell commands and a pipeline: as natively.
#[test]
fn make_runs_recipes_in_parallel_as_natively() {
    let Some(make) = require(tool("/usr/bin/make", "make")) else {
        return;
    };
    let scratch = Scratch::new("make");
    std::fs::write(
        scratch.0.join("Makefile"),
        "all: a.out b.out c.out\n\tcat a.out b.out c.out | sort -r\n\n\
         %.out:\n\techo \"made $@\" > $@\n\tsleep 0.05\n",
    )
    .unwrap();
    let clean = || {
        for name in ["a.out", "b.out", "c.out"] {
            let _ = std::fs::remove_file(scratch.0.join(name));
        }
    };
    clean();
    let native = {
        let _slot = isle_slot();
        Command::new(&make)
            .args(["-s", "-j2"])
            .current_dir(&scratch.0)
            .output()
            .unwrap()
    };
    clean();
    let isle = {
        let _slot = isle_slot();
        atoll()
            .arg("run")
            .arg(&make)
            .args(["-s", "-j2"])
            .current_dir(&scratch.0)
            .output()
            .unwrap()
    };
    assert_eq!(status(&isle), 0, "{}", stderr(&isle));
    assert_eq!(stdout(&isle), stdout(&native));
    assert_eq!(stdout(&isle), "made c.out\nmade b.out\nmade a.out\n");
}

/// gcc compiling and linking a two-file C program inside an isle (it forks
/// cc1, as and collect2, which runs ld): the program it makes is the one
/// a native gcc makes, byte for byte, and runs as natively in an isle too.
#[test]
fn gcc_compiles_and_links_in_an_isle_as_natively() {
    let Some(gcc) = require(tool("/usr/bin/gcc", "gcc")) else {
        return;
    };
    let scratch = Scratch::new("gcc");
    std::fs::write(scratch.0.join("greet.h"), "int greet(const char *who);\n").unwrap();
    std::fs::write(
        scratch.0.join("greet.c"),
        "#include <stdio.h>\n#include \"greet.h\"\n\
         int greet(const char *who) { return printf(\"hello, %s\\n\", who); }\n",
    )
    .unwrap();
    std::fs::write(
        scratch.0.join("main.c"),
        "#include \"greet.h\"\nint main(int argc, char **argv) {\n\
         return greet(argc > 1 ? argv[1] : \"world\") == 12 ? 3 : 1;\n}\n",
    )
    .unwrap();
    let compile = ["-O2", "-Wall", "-o", "greet", "main.c", "greet.c"];
    let native_gcc = {
        let _slot = isle_slot();
        Command::new(&gcc)
            .args(compile)
            .current_dir(&scratch.0)
            .output()
            .unwrap()
    };
    assert!(native_gcc.status.success(), "{}", stderr(&native_gcc));
    let native_binary = std::fs::read(scratch.0.join("greet")).unwrap();
    std::fs::remove_file(scratch.0.join("greet")).unwrap();
    let isle_gcc = {
        let _slot = isle_slot();
        atoll()
            .arg("run")
            .arg(&gcc)
            .args(compile)
            .current_dir(&scratch.0)
            .output()
            .unwrap()
    };
    assert_eq!(status(&isle_gcc), 0, "{}", stderr(&isle_gcc));
    assert_eq!(stderr(&isle_gcc), "", "gcc in the isle");
    let isle_binary = std::fs::read(scratch.0.join("greet")).unwrap();
    assert!(
        isle_binary == native_binary,
        "the isle's gcc made a different program ({} bytes against {})",
        isle_binary.len(),
        native_binary.len()
    );
    let (native, isle) = both(&scratch.0, scratch.0.join("greet"), &["isle"]);
    assert_eq!(native.status.code(), Some(3), "{}", stderr(&native));
    assert_eq!(status(&isle), 3, "{}", stderr(&isle));
    assert_eq!(stdout(&isle), stdout(&native));
    assert_eq!(stdout(&isle), "hello, isle\n");
}

/// python3's subprocess as programs use it: run with captured output and
/// input, check_output through a shell, a failing command's status, a
/// missing program's FileNotFoundError, a pipeline of two Popens.
#[test]
fn python_subprocess_runs_as_natively() {
    let Some(python) = require(tool("/usr/bin/python3", "python3")) else {
        return;
    };
    let scratch = Scratch::new("subprocess");
    let script = r#"
import subprocess, sys
done = subprocess.run(["tr", "a-z", "A-Z"], input=b"isle\n", capture_output=True)
print("run:", done.returncode, done.stdout)
print("shell:", subprocess.check_output("echo one; echo two | wc -l", shell=True).split())
print("status:", subprocess.run(["sh", "-c", "exit 7"]).returncode)
try:
    subprocess.run(["/no/such/program"])
except FileNotFoundError as error:
    print("missing:", error.errno, error.strerror)
first = subprocess.Popen(["printf", "b\na\nc\n"], stdout=subprocess.PIPE)
second = subprocess.Popen(["sort"], stdin=first.stdout, stdout=subprocess.PIPE)
first.stdout.close()
print("pipeline:", second.communicate()[0], first.wait(), second.returncode)
sys.exit(5)
"#;
    std::fs::write(scratch.0.join("script.py"), script).unwrap();
    let (native, isle) = both(&scratch.0, &python, &["script.py"]);
    assert_eq!(native.status.code(), Some(5), "{}", stderr(&native));
    assert_eq!(status(&isle), 5, "{}", stderr(&isle));
    assert_eq!(stdout(&isle), stdout(&native));
    assert!(
        stdout(&isle).contains("missing: 2 No such file or directory"),
        "{}",
        stdout(&isle)
    );
    assert_eq!(stderr(&isle), "");
}

/// python3's multiprocessing: a Pool(2) of forked workers (its queues
/// locked by semaphores in shared memory), a shared Value under its lock,
/// a Process and its exit code, a Queue between processes.
#[test]
fn python_multiprocessing_runs_as_natively() {
    let Some(python) = require(tool("/usr/bin/python3", "python3")) else {
        return;
    };
    let scratch = Scratch::new("multiprocessing");
    let script = r#"
import multiprocessing as mp, os, sys

def square(x):
    return x * x

def add(total, times):
    for _ in range(times):
        with total.get_lock():
            total.value += 1

def report(queue):
    queue.put(("from a child", os.getppid() == parent))
    sys.exit(3)

if __name__ == "__main__":
    mp.set_start_method("fork")
    parent = os.getpid()
    with mp.Pool(2) as pool:
        print("pool:", pool.map(square, range(12)))
        print("async:", pool.apply_async(square, (9,)).get(timeout=30))
    total = mp.Value("i", 0)
    adders = [mp.Process(target=add, args=(total, 500)) for _ in range(2)]
    for adder in adders:
        adder.start()
    for adder in adders:
        adder.join()
    print("value:", total.value, [adder.exitcode for adder in adders])
    queue = mp.Queue()
    child = mp.Process(target=report, args=(queue,))
    child.start()
    print("queue:", queue.get(timeout=30))
    child.join()
    print("exit code:", child.exitcode)
"#;
    std::fs::write(scratch.0.join("script.py"), script).unwrap();
    let (native, isle) = both(&scratch.0, &python, &["script.py"]);
    assert!(native.status.success(), "{}", stderr(&native));
    assert_eq!(status(&isle), 0, "{}", stderr(&isle));
    assert_eq!(stdout(&isle), stdout(&native));
    assert!(
        stdout(&isle).contains("value: 1000 [0, 0]"),
        "{}",
        stdout(&isle)
    );
    assert_eq!(stderr(&isle), "");
}

/// How a run at a terminal ended: its wait status, what it wrote there.
struct AtATerminal {
    status: std::process::ExitStatus,
    output: String,
}

/// Runs `command` as a session leader whose controlling terminal is a new
/// pseudo-terminal, types Ctrl-C once `ready` holds for its processes
/// below it, and waits (at most 20 s) for it to end.
fn ctrl_c_at_a_terminal(mut command: Command, ready: impl Fn(&[u32]) -> bool) -> AtATerminal {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::process::CommandExt;
    use std::time::{Duration, Instant};

    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two fds into the ints given; the name,
    // settings and size pointers may be null.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: fresh fds that only these Files own.
    let (mut master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        )
    };
    command
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe; they make
    // the child a session leader with the terminal (its stdin) as its
    // controlling terminal, in the foreground.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("the command starts");
    // Only the child holds the terminal now: once it ends, reading the
    // master side fails (EIO) rather than waits.
    drop(command);
    drop(slave);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready(&live_descendants(child.id())) {
        assert!(
            Instant::now() < deadline,
            "never ready: {:?}",
            live_descendants(child.id())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the last exec settle into its wait, then Ctrl-C.
    std::thread::sleep(Duration::from_millis(300));
    master.write_all(&[0x03]).unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("Ctrl-C didn't end it");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // What it wrote: read until the terminal has nothing left (EIO once no
    // process holds the other side; EAGAIN, never a wait, if one still did).
    // SAFETY: F_SETFL on an fd we own.
    unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut output = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(read @ 1..) = master.read(&mut chunk) {
        output.extend_from_slice(&chunk[..read]);
    }
    AtATerminal {
        status,
        output: String::from_utf8_lossy(&output).replace('\r', ""),
    }
}

/// Ctrl-C at a terminal running a pipeline under a shell: the terminal's
/// foreground group (which the isle's processes share with atoll) gets
/// SIGINT, the pipeline and the shell end of it, and nothing is left
/// running: as natively.
#[test]
fn ctrl_c_at_a_terminal_ends_a_pipeline_as_natively() {
    use std::os::unix::process::ExitStatusExt;
    let Some(busybox) = require(tool("/bin/busybox", "busybox-static")) else {
        return;
    };
    let script = "echo started; sleep 30 | sleep 31; echo not reached";
    let native = {
        let _slot = isle_slot();
        let mut command = Command::new(&busybox);
        command.args(["sh", "-c", script]);
        // The shell's two sleeps.
        ctrl_c_at_a_terminal(command, |below| below.len() >= 2)
    };
    assert_eq!(
        native.status.signal(),
        Some(libc::SIGINT),
        "{}",
        native.output
    );
    let isle = {
        let _slot = isle_slot();
        let mut command = atoll();
        command.arg("run").arg(&busybox).args(["sh", "-c", script]);
        // The two sleeps' monitors.
        ctrl_c_at_a_terminal(command, |below| below.len() >= 2)
    };
    let ended_of_sigint =
        isle.status.signal() == Some(libc::SIGINT) || isle.status.code() == Some(130);
    assert!(ended_of_sigint, "{:?}: {}", isle.status, isle.output);
    assert!(isle.output.starts_with("started\n"), "{}", isle.output);
    assert!(!isle.output.contains("not reached"), "{}", isle.output);
    assert!(!native.output.contains("not reached"), "{}", native.output);
}
