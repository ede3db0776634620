//! The isle's private /tmp: a tmpfs mounted nowhere.

use std::ffi::CString;
use std::io::{Error, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A tmpfs of at most `size` bytes, mode 0700, nosuid and nodev, mounted
/// nowhere: reachable only through the returned fd (as
/// `/proc/self/fd/N/...`), so no other host user can even name it, and it
/// is gone with the last fd of it, however this process ends (kill -9
/// included). As root it is made here; as any other user, by a child in a
/// user and mount namespace of its own (where that user may mount a tmpfs)
/// that hands the mount back and exits.
pub fn detached_tmpfs(size: u64) -> Result<OwnedFd> {
    let size = CString::new(size.to_string()).map_err(Error::other)?;
    match make_tmpfs(&size) {
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
            make_tmpfs_in_user_namespace(&size)
        }
        made => made,
    }
}

/// fsopen, fsconfig and fsmount: raw syscalls only, no allocation, so a
/// forked child of a threaded process may call it.
fn make_tmpfs(size: &CString) -> Result<OwnedFd> {
    const FSOPEN_CLOEXEC: u32 = 1;
    const FSCONFIG_SET_STRING: u32 = 1;
    const FSCONFIG_CMD_CREATE: u32 = 6;
    const FSMOUNT_CLOEXEC: u32 = 1;
    const MOUNT_ATTR_NOSUID: u32 = 2;
    const MOUNT_ATTR_NODEV: u32 = 4;
    let name = c"tmpfs";
    // SAFETY: fsopen reads a NUL-terminated name; the fd is checked.
    let context =
        checked(unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: a fresh fd we own.
    let context = unsafe { OwnedFd::from_raw_fd(context) };
    for (key, value) in [(c"size", size.as_c_str()), (c"mode", c"0700")] {
        // SAFETY: fsconfig reads two NUL-terminated strings of ours.
        checked(unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                context.as_raw_fd(),
                FSCONFIG_SET_STRING,
                key.as_ptr(),
                value.as_ptr(),
                0,
            )
        })?;
    }
    // SAFETY: fsconfig with no strings: creates the superblock.
    checked(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })?;
    // SAFETY: fsmount on our context; the fd is checked.
    let mount = checked(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            context.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        )
    })?;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(mount) })
}

/// [`make_tmpfs`] in a forked child that first enters a user namespace
/// mapping only this user to itself (so this process may create files in
/// the tmpfs: their owner must be mapped in the tmpfs's namespace) and a
/// mount namespace of its own. The child sends back the mount's fd, or the
/// errno that stopped it, over a socket pair.
fn make_tmpfs_in_user_namespace(size: &CString) -> Result<OwnedFd> {
    // Everything the child needs is made here: after fork, a threaded
    // process's child may not allocate.
    // SAFETY: these calls have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let uid_map = CString::new(format!("{uid} {uid} 1")).map_err(Error::other)?;
    let gid_map = CString::new(format!("{gid} {gid} 1")).map_err(Error::other)?;
    let mut pair = [0 as RawFd; 2];
    // SAFETY: socketpair writes two fds into `pair`.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            pair.as_mut_ptr(),
        )
    } != 0
    {
        return Err(Error::last_os_error());
    }
    // SAFETY: fresh fds we own.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    // SAFETY: the child makes only async-signal-safe raw syscalls on what
    // was made above, and leaves by _exit.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(Error::last_os_error());
    }
    if child == 0 {
        match in_child(size, &uid_map, &gid_map) {
            Ok(mount) => send(theirs.as_raw_fd(), 0, Some(mount.as_raw_fd())),
            Err(error) => send(
                theirs.as_raw_fd(),
                error.raw_os_error().unwrap_or(libc::EIO),
                None,
            ),
        }
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    drop(theirs);
    let received = receive(ours.as_raw_fd());
    let mut status = 0;
    // SAFETY: reaps our own child; `status` is ours to write.
    unsafe { libc::waitpid(child, &mut status, 0) };
    received
}

/// The child's part: the namespaces, its maps, then the tmpfs.
fn in_child(size: &CString, uid_map: &CString, gid_map: &CString) -> Result<OwnedFd> {
    // SAFETY: unshare takes flags only.
    if unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) } != 0 {
        return Err(Error::last_os_error());
    }
    // An unprivileged gid_map needs setgroups denied first.
    write_proc_file(c"/proc/self/setgroups", c"deny")?;
    write_proc_file(c"/proc/self/uid_map", uid_map)?;
    write_proc_file(c"/proc/self/gid_map", gid_map)?;
    make_tmpfs(size)
}

fn write_proc_file(path: &std::ffi::CStr, text: &std::ffi::CStr) -> Result<()> {
    // SAFETY: open reads a NUL-terminated path; the fd is checked.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let bytes = text.to_bytes();
    // SAFETY: write reads `bytes`, which lives across the call.
    let written = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    if written != bytes.len() as isize {
        return Err(Error::last_os_error());
    }
    Ok(())
}

/// One message: an errno (0 with the fd) and, maybe, an fd. No allocation:
/// the control buffer is on the stack.
fn send(socket: RawFd, errno: i32, fd: Option<RawFd>) {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    // SAFETY: `fd` is open in this process until after the send below.
    let passed = fd.map(|fd| unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) });
    if let Some(passed) = &passed {
        control.push(SendAncillaryMessage::ScmRights(std::slice::from_ref(
            passed,
        )));
    }
    // SAFETY: the socket is open in this process through the call.
    let socket = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket) };
    let data = errno.to_ne_bytes();
    let _ = rustix::net::sendmsg(
        socket,
        &[std::io::IoSlice::new(&data)],
        &mut control,
        SendFlags::NOSIGNAL,
    );
}

/// The child's answer: the fd it sent, or the error it met.
fn receive(socket: RawFd) -> Result<OwnedFd> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut data = [0u8; 4];
    // SAFETY: the socket is ours, open through the call.
    let socket = unsafe { std::os::fd::BorrowedFd::borrow_raw(socket) };
    let got = rustix::net::recvmsg(
        socket,
        &mut [std::io::IoSliceMut::new(&mut data)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    if got.bytes != data.len() {
        return Err(Error::other(
            "the helper making the private /tmp ended without an answer",
        ));
    }
    let errno = i32::from_ne_bytes(data);
    if errno != 0 {
        return Err(Error::from_raw_os_error(errno));
    }
    let mut mount = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            mount = mount.or(fds.into_iter().next());
        }
    }
    mount.ok_or_else(|| Error::other("the helper making the private /tmp sent no mount"))
}

fn checked(result: libc::c_long) -> Result<i32> {
    if result < 0 {
        Err(Error::last_os_error())
    } else {
        Ok(result as i32)
    }
}
