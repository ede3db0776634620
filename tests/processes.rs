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

/// execveat and fexecve, AT_SYMLINK_NOFOLLOW, the flags refused, and a
/// program running itself again through /proc/self/exe: as natively.
#[test]
fn execveat_fexecve_and_proc_self_exe_run_as_natively() {
    compare_in_every_flavor(
        "execat",
        "fexecve ran the shell\nfexecve: exited 3\n\
         execveat found sh in /bin\nexecveat in a directory: exited 4\n\
         AT_SYMLINK_NOFOLLOW on a link: exec failed: ELOOP\n\
         AT_SYMLINK_NOFOLLOW on a link: exited 100\n\
         through the link\na link followed: exited 5\n\
         an unknown flag: exec failed: EINVAL\nan unknown flag: exited 100\n\
         an empty path without AT_EMPTY_PATH: exec failed: ENOENT\n\
         an empty path without AT_EMPTY_PATH: exited 100\n\
         ran again through /proc/self/exe\n/proc/self/exe: exited 6\n",
    );
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

/// /proc/PID of another process of the isle's, read by its shell as
/// natively: its cmdline, comm, stat (name, parent) and status, its place
/// in /proc's listing, and its directory gone once it is reaped; a pid
/// that is no process of the isle's has none.
#[test]
fn proc_shows_the_isles_other_processes_as_natively() {
    let Some(busybox) = require(tool("/bin/busybox", "busybox-static")) else {
        return;
    };
    let scratch = Scratch::new("proc-pid");
    let script = r#"
        /bin/sleep 30 & pid=$!
        while [ "$(cat /proc/$pid/comm 2>/dev/null)" != sleep ]; do sleep 0.05; done
        tr '\0' ' ' < /proc/$pid/cmdline; echo
        cat /proc/$pid/comm
        cut -d' ' -f2 /proc/$pid/stat
        [ "$(cut -d' ' -f4 /proc/$pid/stat)" = $$ ] && echo "stat: its parent is the shell"
        case "$(cut -d' ' -f3 /proc/$pid/stat)" in [RS]) echo "stat: running or sleeping";; esac
        grep -E '^(Name|Pid|PPid):' /proc/$pid/status | sed -e "s/\b$pid\b/PID/" -e "s/\b$$\b/SHELL/"
        ls /proc | grep -qx "$pid" && echo "listed in /proc"
        ls /proc/$pid | grep -qx cmdline && echo "its directory lists cmdline"
        kill $pid; wait $pid; echo "ended $?"
        [ -e /proc/$pid ] || echo "gone once reaped"
        [ -e /proc/1/cmdline ] && echo "pid 1 is the isle's" || echo "pid 1 is none of the isle's"
    "#;
    let (native, isle) = both(&scratch.0, &busybox, &["sh", "-c", script]);
    assert_eq!(isle.status.code(), Some(0), "{}", stderr(&isle));
    let expected = "/bin/sleep 30 \nsleep\n(sleep)\nstat: its parent is the shell\n\
                    stat: running or sleeping\nName:\tsleep\nPid:\tPID\nPPid:\tSHELL\n\
                    listed in /proc\nits directory lists cmdline\nended 143\ngone once reaped\n";
    // Natively pid 1 is the host's init; an isle shows no host process.
    assert_eq!(
        stdout(&native),
        format!("{expected}pid 1 is the isle's\n"),
        "{}",
        stderr(&native)
    );
    assert_eq!(
        stdout(&isle),
        format!("{expected}pid 1 is none of the isle's\n"),
        "{}",
        stderr(&isle)
    );
}

/// A forked child's /proc is its own: its /proc/stat counts its own CPU
/// time, not the parent's that it was forked from (isle only: natively
/// /proc/stat is the whole machine's).
#[test]
fn a_forked_childs_proc_stat_counts_its_own_time() {
    let Some(busybox) = require(tool("/bin/busybox", "busybox-static")) else {
        return;
    };
    let _slot = isle_slot();
    // The shell spins a while (no syscalls), then reads its /proc/stat,
    // and a subshell, a fork, reads its own.
    let script = r#"
        i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done
        read label parent rest < /proc/stat
        ( read label child rest < /proc/stat; echo "$parent $child" )
    "#;
    let output = atoll()
        .arg("run")
        .arg(&busybox)
        .args(["sh", "-c", script])
        .output()
        .unwrap();
    assert_eq!(status(&output), 0, "{}", stderr(&output));
    let ticks: Vec<u64> = stdout(&output)
        .split_whitespace()
        .map(|field| field.parse().unwrap())
        .collect();
    let [parent, child] = ticks[..] else {
        panic!("{}", stdout(&output));
    };
    assert!(parent >= 10, "the spin took {parent} ticks");
    assert!(
        child * 2 < parent,
        "the child shows {child} of the parent's {parent} ticks"
    );
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

/// A command run as a session leader whose controlling terminal is a new
/// pseudo-terminal: what it writes there is read back, what is typed goes
/// to it. Every wait is bounded (20 s from the start).
struct Terminal {
    master: std::fs::File,
    child: std::process::Child,
    output: Vec<u8>,
    deadline: std::time::Instant,
    /// Which run this is, for the failures.
    label: String,
}

impl Terminal {
    fn start(mut command: Command) -> Terminal {
        let label = format!("{command:?}");
        use std::os::fd::{AsRawFd, FromRawFd};
        use std::os::unix::process::CommandExt;

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
        let (master, slave) = unsafe {
            (
                std::fs::File::from_raw_fd(master),
                std::fs::File::from_raw_fd(slave),
            )
        };
        command
            .stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave.try_clone().unwrap());
        // SAFETY: setsid and ioctl(TIOCSCTTY) are async-signal-safe; they
        // make the child a session leader with the terminal (its stdin) as
        // its controlling terminal, in the foreground.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().expect("the command starts");
        // Only the child holds the terminal now: once it ends, reading the
        // master side fails (EIO) rather than waits.
        drop(command);
        drop(slave);
        // SAFETY: F_SETFL on an fd we own.
        unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        Terminal {
            master,
            child,
            output: Vec::new(),
            deadline: std::time::Instant::now() + std::time::Duration::from_secs(20),
            label,
        }
    }

    /// Reads what the terminal has now; false once nothing holds it.
    fn read_now(&mut self) -> bool {
        use std::io::Read;
        let mut chunk = [0u8; 4096];
        loop {
            match self.master.read(&mut chunk) {
                Ok(0) => return false,
                Ok(read) => self.output.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output).replace('\r', "")
    }

    fn type_in(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.master.write_all(bytes).unwrap();
    }

    /// Waits until `done` holds for what was written and the processes
    /// below the command.
    fn wait_until(&mut self, what: &str, done: impl Fn(&str, &[u32]) -> bool) {
        loop {
            self.read_now();
            if done(&self.text(), &live_descendants(self.child.id())) {
                return;
            }
            if std::time::Instant::now() > self.deadline {
                let _ = self.child.kill();
                panic!("{}: never {what}: {}", self.label, self.text());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits until `text` has been written `count` times in all.
    fn wait_for(&mut self, text: &str, count: usize) {
        self.wait_until(&format!("{count} times {text:?}"), |output, _| {
            output.matches(text).count() >= count
        });
    }

    /// Waits (within the deadline) for the command to end.
    fn finish(mut self) -> AtATerminal {
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > self.deadline {
                let _ = self.child.kill();
                panic!("{}: it didn't end: {}", self.label, self.text());
            }
            self.read_now();
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        // What is left: until the terminal has nothing (EIO once no process
        // holds the other side; EAGAIN, never a wait, if one still did).
        self.read_now();
        AtATerminal {
            status,
            output: self.text(),
        }
    }
}

/// Runs `command` at a terminal, types Ctrl-C once `ready` holds for its
/// processes below it, and waits for it to end.
fn ctrl_c_at_a_terminal(command: Command, ready: impl Fn(&[u32]) -> bool) -> AtATerminal {
    let mut terminal = Terminal::start(command);
    terminal.wait_until("ready", |_, below| ready(below));
    // Let the last exec settle into its wait, then Ctrl-C.
    std::thread::sleep(std::time::Duration::from_millis(300));
    terminal.type_in(&[0x03]);
    terminal.finish()
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

/// The prompt the interactive shells below are given.
const PROMPT: &str = "ready> ";

/// Whether host process `pid` is stopped (state T in /proc/PID/stat).
fn stopped(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
    state.is_some_and(|rest| rest.starts_with('T'))
}

/// An interactive shell at a terminal, driven line by line: each line
/// typed is done once the shell prompts again.
struct Shell {
    terminal: Terminal,
    prompts: usize,
}

impl Shell {
    fn start(command: Command) -> Shell {
        let mut terminal = Terminal::start(command);
        terminal.wait_for(PROMPT, 1);
        Shell {
            terminal,
            prompts: 1,
        }
    }

    /// Types `bytes` and waits for the next prompt.
    fn enter(&mut self, bytes: &[u8]) {
        self.terminal.type_in(bytes);
        self.prompts += 1;
        self.terminal.wait_for(PROMPT, self.prompts);
    }

    /// Enters `line` until what the terminal shows contains `text`.
    fn enter_until(&mut self, line: &str, text: &str) {
        while !self.terminal.text().contains(text) {
            self.enter(line.as_bytes());
        }
    }
}

/// A job-control session: `sleep 30` stopped by Ctrl-Z, listed, brought
/// back with `fg` and ended by Ctrl-C; `cat &` stopped by SIGTTIN when it
/// reads the terminal, then killed; then `exit`.
fn job_control_session(command: Command) -> AtATerminal {
    let mut shell = Shell::start(command);
    shell.terminal.type_in(b"sleep 30\n");
    shell
        .terminal
        .wait_until("the sleep running", |_, below| !below.is_empty());
    // Let it settle into its sleep (an isle's exec, too), then Ctrl-Z.
    std::thread::sleep(std::time::Duration::from_millis(300));
    shell.enter(&[0x1a]);
    shell.enter(b"jobs\n");
    shell.terminal.type_in(b"fg\n");
    shell
        .terminal
        .wait_until("the sleep continued", |_, below| {
            !below.is_empty() && below.iter().all(|&pid| !stopped(pid))
        });
    std::thread::sleep(std::time::Duration::from_millis(300));
    shell.enter(&[0x03]);
    shell.enter(b"echo status $?\n");
    shell.enter(b"cat &\n");
    shell.enter_until("jobs\n", "Stopped (tty input)");
    shell.enter(b"kill -9 %1\n");
    shell.enter_until("\n", "Killed");
    shell.terminal.type_in(b"exit\n");
    shell.terminal.finish()
}

/// What a job-control session reported: the shell's job notices and the
/// statuses echoed, each once in a row (a line entered again until a
/// notice shows may repeat one), but `jobs` saying a job still runs (how
/// often it does is the machine's timing).
fn job_reports(output: &str) -> Vec<String> {
    let mut reports: Vec<String> = Vec::new();
    for line in output.lines() {
        // Without the prompt and its cursor-position query.
        let line = line.replace(PROMPT, "").replace("\u{1b}[6n", "");
        let line = line.trim_end();
        let notice = line.starts_with('[') && !line.contains("Running");
        let report = notice || line.starts_with("status ");
        if report && reports.last().map(String::as_str) != Some(line) {
            reports.push(line.to_string());
        }
    }
    reports
}

/// Job control at a terminal, in an interactive busybox sh, as natively:
/// Ctrl-Z stops the foreground job and the shell takes the terminal back
/// (tcsetpgrp), `jobs` lists it, `fg` hands it the terminal and continues
/// it (SIGCONT), Ctrl-C ends it; a background job reading the terminal is
/// stopped by SIGTTIN; wait4 with WUNTRACED reports each stop.
#[test]
fn job_control_at_a_terminal_as_natively() {
    let Some(busybox) = require(tool("/bin/busybox", "busybox-static")) else {
        return;
    };
    let native = {
        let _slot = isle_slot();
        let mut command = Command::new(&busybox);
        command.args(["sh", "-i"]).env("PS1", PROMPT);
        job_control_session(command)
    };
    assert!(native.status.success(), "{}", native.output);
    let isle = {
        let _slot = isle_slot();
        let mut command = atoll();
        command
            .args(["run", "-e"])
            .arg(format!("PS1={PROMPT}"))
            .arg(&busybox)
            .args(["sh", "-i"]);
        job_control_session(command)
    };
    assert!(isle.status.success(), "{:?}: {}", isle.status, isle.output);
    let reports = job_reports(&native.output);
    assert_eq!(job_reports(&isle.output), reports, "{}", isle.output);
    for expected in ["Stopped", "status 130", "Stopped (tty input)", "Killed"] {
        assert!(
            reports.iter().any(|report| report.contains(expected)),
            "{reports:?}"
        );
    }
}
