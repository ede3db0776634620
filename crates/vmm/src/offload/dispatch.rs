//! The one dispatch: a request's opcode picks its handler family.

use std::time::Duration;

use atoll_abi::linux::errno::{EFAULT, EINVAL};
use atoll_abi::queue::{memory, Opcode, Request};
use vm_memory::{Bytes, GuestAddress};

use super::net::NetPolicy;
use super::{code, events, exec, file_mapping, fs, futex, io, net};
use crate::guest::memory::GuestRam;
use crate::sandbox::Files;

/// Performs one request of opcode `op` (decoded once, by the server);
/// returns its Linux-style result.
pub(super) fn handle(
    ram: &GuestRam,
    files: &Files,
    net: &NetPolicy,
    op: Opcode,
    request: &Request,
) -> i64 {
    // Every opcode has its row here, by family: a new one fails the build
    // until it is given one.
    let result = match op {
        Opcode::Nop => Ok(0),
        Opcode::Log => log(ram, request),
        Opcode::Memory => memory_request(ram, request),
        // The server itself serves it, before handlers are reached.
        Opcode::Interrupt => Ok(0),

        Opcode::Read | Opcode::Write => io::read_write(ram, files, op, request),
        Opcode::ReadVectored | Opcode::WriteVectored => io::vectored(ram, files, op, request),
        Opcode::Ioctl => io::terminal_ioctl(ram, files, request),
        Opcode::Fstat => io::fstat(ram, files, request),
        Opcode::Poll => io::poll(ram, files, request),
        Opcode::Lseek => io::lseek(files, request),
        Opcode::GetRandom => io::getrandom(ram, request),
        Opcode::Transfer => io::transfer(ram, files, request),

        Opcode::OpenAt
        | Opcode::Close
        | Opcode::StatAt
        | Opcode::Statx
        | Opcode::GetDents
        | Opcode::MkdirAt
        | Opcode::MknodAt
        | Opcode::UnlinkAt
        | Opcode::RenameAt
        | Opcode::LinkAt
        | Opcode::ReadlinkAt
        | Opcode::SymlinkAt
        | Opcode::AccessAt
        | Opcode::Chdir
        | Opcode::GetCwd
        | Opcode::Dup
        | Opcode::Fcntl
        | Opcode::CloseRange
        | Opcode::Ftruncate
        | Opcode::Fsync
        | Opcode::Fallocate
        | Opcode::Flock
        | Opcode::Pipe
        | Opcode::Pread
        | Opcode::Pwrite
        | Opcode::Umask
        | Opcode::FdLimit
        | Opcode::Chmod
        | Opcode::Chown
        | Opcode::UtimensAt
        | Opcode::StatFs => fs::handle(ram, files, op, request),

        Opcode::EpollCreate
        | Opcode::EpollCtl
        | Opcode::EpollWait
        | Opcode::EventFd
        | Opcode::TimerFdCreate
        | Opcode::TimerFdSetTime
        | Opcode::TimerFdGetTime => events::handle(ram, files, op, request),

        Opcode::MapFile
        | Opcode::MapPrivateFile
        | Opcode::UnmapFile
        | Opcode::Msync
        | Opcode::RemapFile
        | Opcode::MapSharedMemory => file_mapping::handle(ram, files, op, request),
        Opcode::SharedFutex => futex::handle(ram, request),
        Opcode::RewriteMapped => code::rewrite_mapped(ram, files, request),

        Opcode::Fork => crate::process::fork(),
        Opcode::Wait => {
            let [pid, options, usage_at, ..] = request.args;
            crate::process::wait(ram, pid, options, usage_at)
        }
        Opcode::Usage => crate::process::usage(ram, request.args[0], request.args[1]),
        Opcode::ParentDeathSignal => crate::host::process::set_parent_death_signal(request.args[0]),
        Opcode::Exec => exec::exec(ram, files, request.args),
        Opcode::Kill => crate::process::kill(request.args[0], request.args[1]),
        Opcode::Stop => crate::process::stop(request.args[0]),
        Opcode::WaitId => crate::process::waitid(ram, request.args),
        Opcode::Group => {
            let [what, pid, pgid, ..] = request.args;
            crate::process::group(what, pid, pgid)
        }

        Opcode::Socket => net::socket(files, request),
        Opcode::SocketPair => net::socket_pair(ram, files, request),
        Opcode::Bind | Opcode::Connect => net::bind_or_connect(ram, files, net, op, request),
        Opcode::Listen => net::listen(files, net, request),
        Opcode::Accept => net::accept(ram, files, net, request),
        Opcode::GetSockName | Opcode::GetPeerName => net::socket_name(ram, files, net, op, request),
        Opcode::SetSockOpt => net::set_option(ram, files, net, request),
        Opcode::GetSockOpt => net::get_option(ram, files, request),
        Opcode::Shutdown => net::shutdown(files, request),
        Opcode::SendTo => net::send_to(ram, files, net, request),
        Opcode::RecvFrom => net::receive_from(ram, files, net, request),
        Opcode::SendMsg | Opcode::RecvMsg => net::message(ram, files, net, op, request),
    };
    result.unwrap_or_else(|errno| -errno)
}

/// memory(kind, address, len) on guest RAM, at once (the server sends
/// POPULATE to its populating thread instead); the range is checked there.
fn memory_request(ram: &GuestRam, request: &Request) -> Result<i64, i64> {
    let [kind, address, len, ..] = request.args;
    match kind {
        memory::POPULATE => ram.populate_ahead(address, len, Duration::ZERO)?,
        memory::RELEASE => ram.release(address, len)?,
        memory::ATTACH => ram.attach(address, len)?,
        _ => return Err(EINVAL),
    }
    Ok(0)
}

fn log(ram: &GuestRam, request: &Request) -> Result<i64, i64> {
    let [address, len, ..] = request.args;
    let len = len.min(4096);
    let mut line = vec![0u8; len as usize];
    ram.memory()
        .read_slice(&mut line, GuestAddress(address))
        .map_err(|_| EFAULT)?;
    use std::io::Write;
    let _ = std::io::stderr().write_all(&line);
    Ok(len as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::tests::stdio_only;
    use atoll_abi::linux::errno::{EBADF, ENOTTY};

    /// One request against stdio only, without a network.
    fn serve(ram: &GuestRam, op: Opcode, args: [u64; 6]) -> i64 {
        handle(
            ram,
            &stdio_only(),
            &NetPolicy::default(),
            op,
            &request(op.as_u32(), args),
        )
    }

    fn request(opcode: u32, args: [u64; 6]) -> Request {
        Request {
            opcode,
            flags: 0,
            tag: 7,
            args,
        }
    }

    #[test]
    fn bad_fds_and_addresses_are_refused() {
        let ram = GuestRam::new(2 << 20).unwrap();
        assert_eq!(serve(&ram, Opcode::Write, [9, 0x1000, 4, 0, 0, 0]), -EBADF);
        assert_eq!(
            serve(&ram, Opcode::Write, [1, 2 << 20, 4, 0, 0, 0]),
            -EFAULT
        );
        assert_eq!(
            serve(&ram, Opcode::Write, [1, u64::MAX - 1, 4, 0, 0, 0]),
            -EFAULT
        );
        assert_eq!(
            serve(&ram, Opcode::ReadVectored, [0, 0x1000, 5000, 0, 0, 0]),
            -EINVAL
        );
        assert_eq!(
            serve(&ram, Opcode::Ioctl, [1, 0x1234, 0x1000, 0, 0, 0]),
            -ENOTTY
        );
    }

    #[test]
    fn iovecs_pointing_outside_ram_are_refused() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let iov = [0x2000u64, 16, 0xffff_0000, 16];
        for (index, word) in iov.iter().enumerate() {
            ram.memory()
                .write_obj(*word, GuestAddress(0x1000 + index as u64 * 8))
                .unwrap();
        }
        assert_eq!(
            serve(&ram, Opcode::WriteVectored, [1, 0x1000, 2, 0, 0, 0]),
            -EFAULT
        );
    }

    #[test]
    fn zero_length_io_never_checks_its_buffer() {
        let ram = GuestRam::new(2 << 20).unwrap();
        let outside = 1 << 40;
        for op in [
            Opcode::Read,
            Opcode::Write,
            Opcode::ReadVectored,
            Opcode::WriteVectored,
        ] {
            assert_eq!(
                serve(&ram, op, [1, outside, 0, 0, 0, 0]),
                0,
                "opcode {op:?}"
            );
        }
        // Empty iovecs anywhere are skipped; a non-empty one is still checked.
        let iov = [outside, 0, 0x2000, 0];
        for (index, word) in iov.iter().enumerate() {
            ram.memory()
                .write_obj(*word, GuestAddress(0x1000 + index as u64 * 8))
                .unwrap();
        }
        let at_file_position = u64::MAX;
        let writev = [1, 0x1000, 2, at_file_position, 0, 0];
        assert_eq!(serve(&ram, Opcode::WriteVectored, writev), 0);
        assert_eq!(
            serve(&ram, Opcode::Write, [1, outside, 1, 0, 0, 0]),
            -EFAULT
        );
    }

    #[test]
    fn getrandom_fills_guest_memory() {
        let ram = GuestRam::new(2 << 20).unwrap();
        assert_eq!(serve(&ram, Opcode::GetRandom, [0x3000, 64, 0, 0, 0, 0]), 64);
        let mut bytes = [0u8; 64];
        ram.memory()
            .read_slice(&mut bytes, GuestAddress(0x3000))
            .unwrap();
        assert!(bytes.iter().any(|&b| b != 0));
    }
}
