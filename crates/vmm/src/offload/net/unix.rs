//! Unix sockets: names confined like files, an abstract namespace of the
//! isle's own, and fds passed over them (SCM_RIGHTS).
//!
//! A path name is resolved inside the isle's mounts like any file name:
//! bind makes the socket file in a confined parent directory, connect opens
//! the socket file confined (O_PATH). The host then names either through
//! /proc/self/fd/N, so it never resolves a guest path itself. Abstract
//! names get a prefix of this monitor's own, so an isle reaches neither the
//! host's abstract sockets nor another isle's.

use std::ops::Range;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use atoll_abi::linux::errno::{EINVAL, ENAMETOOLONG, ENOBUFS};

use crate::host::net::control_messages;
use crate::sandbox::Files;

/// Room for a path in `struct sockaddr_un`, its NUL included.
const SUN_PATH_MAX: usize = 108;
const FAMILY: [u8; 2] = (libc::AF_UNIX as u16).to_le_bytes();
const AT_FDCWD: i64 = atoll_abi::linux::AT_FDCWD_INT as i64;

/// A guest socket address made into the host's. `_keep_open` keeps open,
/// until the call is done, the fd a /proc/self/fd name refers to, or the
/// isle's own socket a loopback destination is allowed for.
pub struct HostAddress {
    pub bytes: Vec<u8>,
    pub _keep_open: Option<Arc<OwnedFd>>,
    /// A path name as the guest gave it, which the host's doesn't show.
    pub guest_name: Option<Vec<u8>>,
}

impl HostAddress {
    pub fn plain(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            _keep_open: None,
            guest_name: None,
        }
    }
}

/// The prefix that makes an abstract name this isle's.
fn abstract_prefix() -> String {
    format!("atoll.{}.", std::process::id())
}

fn with_family(path: &[u8]) -> Vec<u8> {
    let mut bytes = FAMILY.to_vec();
    bytes.extend_from_slice(path);
    bytes
}

/// A guest `sockaddr_un` (its family already checked) as the host's, for
/// bind (`bind`) or for connect and sendto.
pub fn host_address(files: &Files, guest: &[u8], bind: bool) -> Result<HostAddress, i64> {
    let path = &guest[2..];
    match path.first() {
        // bind with no name autobinds, as on Linux; connect needs one.
        None if bind => Ok(HostAddress::plain(guest.to_vec())),
        None => Err(EINVAL),
        Some(0) => {
            let mut name = vec![0u8];
            name.extend_from_slice(abstract_prefix().as_bytes());
            name.extend_from_slice(&path[1..]);
            if name.len() > SUN_PATH_MAX {
                return Err(EINVAL);
            }
            Ok(HostAddress::plain(with_family(&name)))
        }
        Some(_) => {
            let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
            let path = std::str::from_utf8(&path[..end]).map_err(|_| EINVAL)?;
            let (held, host) = if bind {
                let (directory, name) = files.socket_bind_target(path)?;
                let host = format!(
                    "/proc/self/fd/{}/{}",
                    directory.as_raw_fd(),
                    name.to_string_lossy()
                );
                (directory, host)
            } else {
                let socket = files.open_path(AT_FDCWD, path, true, false)?;
                let host = format!("/proc/self/fd/{}", socket.as_raw_fd());
                (socket, host)
            };
            if host.len() >= SUN_PATH_MAX {
                return Err(ENAMETOOLONG);
            }
            let mut bytes = with_family(host.as_bytes());
            bytes.push(0);
            Ok(HostAddress {
                bytes,
                _keep_open: Some(Arc::new(held)),
                guest_name: Some(guest.to_vec()),
            })
        }
    }
}

/// A guest address as Linux reports it back: a path name up to its NUL
/// (plus the NUL), an abstract or empty name exactly as given.
pub fn normalized(guest: &[u8]) -> Vec<u8> {
    match guest.get(2) {
        Some(&first) if first != 0 => {
            let end = guest[2..]
                .iter()
                .position(|&b| b == 0)
                .map_or(guest.len(), |at| at + 2);
            let mut bytes = guest[..end].to_vec();
            bytes.push(0);
            bytes
        }
        _ => guest.to_vec(),
    }
}

/// The guest's view of a Unix address the host reports: the isle's own
/// abstract names lose their prefix. Path names and other abstract names
/// are the host's, which the isle must not learn, so they show unnamed.
pub fn guest_address(host: &[u8]) -> Vec<u8> {
    let prefix = abstract_prefix();
    match host.get(2..) {
        Some([0, name @ ..]) if name.starts_with(prefix.as_bytes()) => {
            let mut path = vec![0u8];
            path.extend_from_slice(&name[prefix.len()..]);
            with_family(&path)
        }
        _ => FAMILY.to_vec(),
    }
}

/// The names a socket keeps once bound (`local`) or connected (`peer`).
pub fn remember(files: &Files, fd: u64, local: Option<&[u8]>, peer: Option<&[u8]>) {
    let Ok(mut names) = files.socket_names(fd) else {
        return;
    };
    if let Some(local) = local {
        names.local = Some(normalized(local));
    }
    if let Some(peer) = peer {
        names.peer = Some(normalized(peer));
    }
    // The socket may have been closed meanwhile; then there is nothing to name.
    let _ = files.set_socket_names(fd, names);
}

/// Control data is at most this big, as Linux's default optmem_max allows.
pub const MAX_CONTROL: usize = 20480;
const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;

/// Guest control data for sendmsg, with the guest fds of SCM_RIGHTS made
/// host fds; the returned handles keep those open through the send.
pub fn outgoing_control(
    files: &Files,
    mut control: Vec<u8>,
) -> Result<(Vec<u8>, Vec<Arc<OwnedFd>>), i64> {
    if control.len() > MAX_CONTROL {
        return Err(ENOBUFS);
    }
    let mut held = Vec::new();
    for message in control_messages(&control)? {
        if message.level != SOL_SOCKET {
            continue;
        }
        if message.kind != SCM_RIGHTS {
            // Credentials name host ids the isle doesn't know.
            return Err(EINVAL);
        }
        for slot in control[fd_slots(message.data)].chunks_exact_mut(4) {
            let guest = i32::from_le_bytes(slot.try_into().unwrap_or_default());
            let host = files.host_fd(guest as u32 as u64)?;
            slot.copy_from_slice(&host.as_raw_fd().to_le_bytes());
            held.push(host);
        }
    }
    Ok((control, held))
}

/// The whole fd numbers in SCM_RIGHTS data.
fn fd_slots(data: Range<usize>) -> Range<usize> {
    data.start..data.start + data.len() / 4 * 4
}

/// Takes the fds a recvmsg brought (`received`: each with the offset of
/// its slot in `control`) into the isle's table, writing their guest
/// numbers into `control`. Fds the isle has no room for are closed and the
/// message marked truncated, as on Linux.
pub fn incoming_control(
    files: &Files,
    control: &mut [u8],
    received: Vec<(usize, OwnedFd)>,
    close_on_exec: bool,
    flags: &mut i32,
) {
    for (slot, host) in received {
        let guest = match files.adopt_received(host, close_on_exec) {
            Ok(guest) => guest as i32,
            Err(_) => {
                *flags |= libc::MSG_CTRUNC;
                -1
            }
        };
        control[slot..slot + 4].copy_from_slice(&guest.to_le_bytes());
    }
}

/// A buffer for up to `len` bytes of incoming control data.
pub fn control_buffer(len: u64) -> Vec<u8> {
    vec![0u8; len.min(MAX_CONTROL as u64) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::net::{control_align, CONTROL_HEADER};
    use atoll_abi::linux::errno::{EBADF, ENOENT, EROFS};
    use std::os::fd::AsFd;

    /// An isle with a writable /tmp and a read-only /ro, both scratch
    /// directories of the test.
    fn files() -> Files {
        let base = std::env::temp_dir().join(format!(
            "atoll-unix-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let mut specs = Vec::new();
        for (name, read_only) in [("tmp", false), ("ro", true)] {
            std::fs::create_dir_all(base.join(name)).unwrap();
            specs.push(crate::MountSpec {
                host: base.join(name),
                guest: format!("/{name}"),
                read_only,
                keep_owners: false,
            });
        }
        Files::new(&specs, "/tmp").unwrap()
    }

    fn named(path: &[u8]) -> Vec<u8> {
        with_family(path)
    }

    fn cmsg(level: i32, kind: i32, data: &[u8]) -> Vec<u8> {
        let mut bytes = ((CONTROL_HEADER + data.len()) as u64)
            .to_le_bytes()
            .to_vec();
        bytes.extend_from_slice(&level.to_le_bytes());
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.extend_from_slice(data);
        bytes.resize(control_align(bytes.len()), 0);
        bytes
    }

    #[test]
    fn abstract_names_get_the_isles_prefix_and_lose_it_on_the_way_back() {
        let files = Files::new(&[], "/").unwrap();
        let host = host_address(&files, &named(b"\0chat"), true).unwrap();
        let expected = format!("\0atoll.{}.chat", std::process::id());
        assert_eq!(host.bytes, named(expected.as_bytes()));
        assert_eq!(guest_address(&host.bytes), named(b"\0chat"));
        // The host's own abstract and path names are never shown.
        assert_eq!(guest_address(&named(b"\0/tmp/.X11-unix/X0")), FAMILY);
        assert_eq!(guest_address(&named(b"/proc/self/fd/7/s\0")), FAMILY);
        let long = [&b"\0"[..], &[b'a'; 107]].concat();
        assert_eq!(
            host_address(&files, &named(&long), true).err(),
            Some(EINVAL)
        );
    }

    #[test]
    fn path_names_resolve_inside_the_mounts() {
        let files = files();
        // Autobind on bind; connect needs a name.
        assert!(host_address(&files, &FAMILY, true).is_ok());
        assert_eq!(host_address(&files, &FAMILY, false).err(), Some(EINVAL));
        let refusals = [
            (&b"/ro/x.sock"[..], true, EROFS),
            (b"/x.sock", true, ENOENT),
            (b"/missing/x.sock", true, ENOENT),
            (b"/tmp/../ro/x.sock", true, EROFS),
            (b"/missing.sock", false, ENOENT),
            (b"/proc/self/fd/0", false, ENOENT),
            (b"\xff.sock", false, EINVAL),
        ];
        for (path, bind, errno) in refusals {
            assert_eq!(
                host_address(&files, &named(path), bind).err(),
                Some(errno),
                "{:?}",
                String::from_utf8_lossy(path)
            );
        }
        let host = host_address(&files, &named(b"/tmp/x.sock\0junk"), true).unwrap();
        let text = String::from_utf8_lossy(&host.bytes[2..]).into_owned();
        assert!(text.starts_with("/proc/self/fd/"), "{text}");
        assert!(text.ends_with("/x.sock\0"), "{text}");
        assert_eq!(
            normalized(&named(b"/tmp/x.sock\0junk")),
            named(b"/tmp/x.sock\0")
        );
    }

    #[test]
    fn control_data_is_checked_and_its_fds_translated() {
        let files = Files::new(&[], "/").unwrap();
        let lying = [
            &16u64.to_le_bytes()[..],
            &1i32.to_le_bytes(),
            &1i32.to_le_bytes(),
        ]
        .concat();
        let mut too_long = lying.clone();
        too_long[0] = 64;
        assert_eq!(outgoing_control(&files, too_long).err(), Some(EINVAL));
        let mut too_short = lying;
        too_short[0] = 8;
        assert_eq!(outgoing_control(&files, too_short).err(), Some(EINVAL));
        let never_issued = cmsg(SOL_SOCKET, SCM_RIGHTS, &77i32.to_le_bytes());
        assert_eq!(outgoing_control(&files, never_issued).err(), Some(EBADF));
        let credentials = cmsg(SOL_SOCKET, 2, &[0; 12]);
        assert_eq!(outgoing_control(&files, credentials).err(), Some(EINVAL));
        assert_eq!(
            outgoing_control(&files, vec![0; MAX_CONTROL + 1]).err(),
            Some(ENOBUFS)
        );
        // Guest fds 1 and 2 become the host fds behind them, held open.
        let fds = [1i32.to_le_bytes(), 2i32.to_le_bytes()].concat();
        let (control, held) = outgoing_control(&files, cmsg(SOL_SOCKET, SCM_RIGHTS, &fds)).unwrap();
        assert_eq!(held.len(), 2);
        let first = i32::from_le_bytes(control[16..20].try_into().unwrap());
        let second = i32::from_le_bytes(control[20..24].try_into().unwrap());
        assert_eq!([first, second], [held[0].as_raw_fd(), held[1].as_raw_fd()]);
    }

    #[test]
    fn received_fds_join_the_isles_table() {
        let files = Files::new(&[], "/").unwrap();
        let host = std::io::stderr().as_fd().try_clone_to_owned().unwrap();
        let mut control = cmsg(SOL_SOCKET, SCM_RIGHTS, &host.as_raw_fd().to_le_bytes());
        let mut flags = 0;
        incoming_control(&files, &mut control, vec![(16, host)], true, &mut flags);
        let guest = i32::from_le_bytes(control[16..20].try_into().unwrap());
        assert_eq!(guest, 3);
        assert_eq!(flags, 0);
        assert!(files.host_fd(guest as u64).is_ok());
    }
}
