//! The isle's processes live as long as its first one, the monitor `atoll
//! run` started, as a container's processes live as long as its init.
//!
//! Before its first fork the top monitor makes a pipe and keeps the write
//! end. Each child monitor closes the copy of the write end it inherited
//! and watches the read end on a thread of its own. However the top monitor
//! ends (kill -9 included), the pipe then has no writer left: every
//! watcher sees POLLHUP and kills its process. No process is left behind,
//! so no core is held past the isle's registration, and each process's
//! files (the private /tmp's last fd among them) close with it.

use std::os::fd::OwnedFd;
use std::sync::Mutex;

use rustix::event::{poll, PollFd, PollFlags};
use rustix::pipe::{pipe_with, PipeFlags};

use crate::host::process as host_process;

struct Lifeline {
    /// The top monitor's pid: the root of the isle's tree.
    top: u32,
    /// Polled by the children: hangs up when the top monitor is gone.
    watched: OwnedFd,
    /// The top monitor's alone (children close theirs).
    held: Option<OwnedFd>,
}

static LIFELINE: Mutex<Option<Lifeline>> = Mutex::new(None);

fn lifeline() -> std::sync::MutexGuard<'static, Option<Lifeline>> {
    LIFELINE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Before a fork: the top monitor makes the lifeline at its first.
pub(crate) fn before_fork() -> Result<(), i64> {
    let mut lifeline = lifeline();
    if lifeline.is_none() {
        let (watched, held) =
            pipe_with(PipeFlags::CLOEXEC).map_err(|error| i64::from(error.raw_os_error()))?;
        *lifeline = Some(Lifeline {
            top: std::process::id(),
            watched,
            held: Some(held),
        });
    }
    Ok(())
}

/// In a forked child's monitor: lets go of the write end, and ends this
/// process once the top monitor has ended.
pub(crate) fn watch_in_child() {
    let watched = {
        let mut lifeline = lifeline();
        let Some(lifeline) = lifeline.as_mut() else {
            return;
        };
        lifeline.held = None;
        match lifeline.watched.try_clone() {
            Ok(watched) => watched,
            Err(_) => return,
        }
    };
    let watcher = std::thread::Builder::new()
        .name("atoll-lifeline".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            let mut fds = [PollFd::new(&watched, PollFlags::IN)];
            if poll(&mut fds, None).is_ok() && !fds[0].revents().is_empty() {
                // Nothing is ever written: readiness is the hang-up.
                let _ = host_process::kill(std::process::id(), libc::SIGKILL);
            }
        });
    if watcher.is_err() {
        tracing::warn!("no lifeline watcher: this process may outlive its isle");
    }
}

/// The live processes below `root` (its children, theirs, ...), from the
/// host's /proc.
fn tree_below(root: u32) -> Vec<u32> {
    let mut children = std::collections::HashMap::<u32, Vec<u32>>::new();
    for process in crate::host::live_processes() {
        children.entry(process.ppid).or_default().push(process.pid);
    }
    let mut found = Vec::new();
    let mut next = vec![root];
    while let Some(parent) = next.pop() {
        for child in children.remove(&parent).unwrap_or_default() {
            found.push(child);
            next.push(child);
        }
    }
    found
}

/// Whether `pid` is a process of the isle's tree: the top monitor or one
/// below it.
pub(crate) fn in_tree(pid: u32) -> bool {
    isle_tree().contains(&pid)
}

/// The isle's tree: the top monitor and every process below it.
pub(crate) fn isle_tree() -> Vec<u32> {
    let top = lifeline().as_ref().map_or(std::process::id(), |l| l.top);
    std::iter::once(top).chain(tree_below(top)).collect()
}

/// kill(-1, signal): every process of the isle's tree (the top monitor
/// and all below it) but this one; ESRCH when there is no other. A process
/// whose parent ended was handed to the host's init and is no longer
/// found; the lifeline still ends it with the tree.
pub(crate) fn kill_all_others(signal: i32) -> Result<i64, i64> {
    let me = std::process::id();
    let others: Vec<u32> = isle_tree().into_iter().filter(|&pid| pid != me).collect();
    if others.is_empty() {
        return Err(atoll_abi::linux::errno::ESRCH);
    }
    for pid in others {
        let _ = host_process::kill(pid, signal);
    }
    Ok(0)
}
