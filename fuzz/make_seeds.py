#!/usr/bin/env python3
"""Writes the seed corpus of the offload_server fuzz target: small, valid
request batches for each family of opcodes (files, links, pipes, polling,
sockets, fd passing), plus a broken ring. The layout is the one
atoll_vmm::fuzzing::Harness::run reads: a control byte (bit 0: a raw
submission tail follows), a request count, 64-byte requests, then guest
memory placed at 0x1000. The fuzzer mutates these from there."""
import os
import struct
import sys

# Opcodes (crates/abi/src/queue.rs).
READ, WRITE, FSTAT, POLL, LSEEK, READV, WRITEV, TRANSFER = 1, 2, 4, 5, 6, 9, 10, 11
OPENAT, CLOSE, STATAT, GETDENTS, MKDIRAT, UNLINKAT, RENAMEAT = 12, 13, 14, 15, 16, 17, 18
READLINKAT, SYMLINKAT, ACCESSAT, CHDIR, GETCWD, DUP, FCNTL = 19, 20, 21, 22, 23, 24, 25
FTRUNCATE, PIPE, PREAD, PWRITE, CHMOD, UTIMENSAT, STATFS, LINKAT = 26, 28, 29, 30, 32, 33, 34, 35
SOCKET, SOCKETPAIR, BIND, LISTEN, ACCEPT, CONNECT, GETSOCKNAME = 36, 37, 38, 39, 40, 41, 42
SENDTO, RECVFROM, EPOLL_CREATE, EPOLL_CTL, EPOLL_WAIT, EVENTFD = 47, 48, 49, 50, 51, 52
STATX, FLOCK, FALLOCATE, SENDMSG, RECVMSG, CLOSE_RANGE = 56, 57, 58, 60, 61, 62
MAP_FILE, UNMAP_FILE, MSYNC, REMAP_FILE = 63, 64, 65, 66

AT_FDCWD = (1 << 64) - 100
DATA = 0x1000
O_RDWR, O_CREAT, O_DIRECTORY, O_RDONLY = 2, 0o100, 0o200000, 0
AF_UNIX, SOCK_STREAM, SOCK_DGRAM = 1, 1, 2


class Memory:
    """Guest memory from DATA up, with helpers to place things in it."""

    def __init__(self):
        self.bytes = bytearray()

    def put(self, data):
        address = DATA + len(self.bytes)
        self.bytes += data
        self.bytes += b"\0" * (-len(self.bytes) % 16)
        return address

    def string(self, text):
        return self.put(text.encode() + b"\0")

    def space(self, size):
        return self.put(b"\0" * size)


def request(op, *args, flags=0):
    args = list(args) + [0] * (6 - len(args))
    return struct.pack("<IIQ6Q", op, flags, 0x7a6, *[a & (2**64 - 1) for a in args])


def seed(requests, memory, raw_tail=None):
    head = bytes([1]) + struct.pack("<I", raw_tail) if raw_tail is not None else bytes([0])
    return head + bytes([len(requests)]) + b"".join(requests) + bytes(memory.bytes)


def files():
    m = Memory()
    name, text, out, stat = m.string("file"), m.put(b"hello"), m.space(64), m.space(256)
    return seed([
        request(OPENAT, AT_FDCWD, name, O_RDWR | O_CREAT, 0o644),
        request(WRITE, 3, text, 5),
        request(PREAD, 3, out, 5, 0),
        request(FSTAT, 3, stat),
        request(LSEEK, 3, 0, 2),
        request(FTRUNCATE, 3, 2),
        request(FALLOCATE, 3, 0, 0, 4096),
        request(FLOCK, 3, 6),
        request(FCNTL, 3, 3, 0),
        request(STATX, AT_FDCWD, name, 0, 0xfff, stat),
        request(CLOSE, 3),
        request(UNLINKAT, AT_FDCWD, name, 0),
    ], m)


def directories():
    m = Memory()
    d, link, target, new = m.string("d"), m.string("d/l"), m.string("../../outside.txt"), m.string("d/m")
    out, dot = m.space(512), m.string(".")
    return seed([
        request(MKDIRAT, AT_FDCWD, d, 0o755),
        request(SYMLINKAT, target, AT_FDCWD, link),
        request(OPENAT, AT_FDCWD, link, O_RDWR, 0),
        request(READLINKAT, AT_FDCWD, link, out, 256),
        request(RENAMEAT, AT_FDCWD, link, AT_FDCWD, new, 0),
        request(LINKAT, AT_FDCWD, new, AT_FDCWD, link, 0),
        request(OPENAT, AT_FDCWD, dot, O_RDONLY | O_DIRECTORY, 0),
        request(GETDENTS, 3, out, 512),
        request(CHMOD, AT_FDCWD, d, 0o700, 0),
        request(STATAT, AT_FDCWD, new, out, 0x100),
        request(ACCESSAT, AT_FDCWD, d, 4, 0),
        request(STATFS, d, 0, out),
        request(GETCWD, out, 256),
        request(CHDIR, d, 0),
        request(UNLINKAT, AT_FDCWD, m.string("/data/d/l"), 0),
    ], m)


def pipes_and_polling():
    m = Memory()
    fds, text, out = m.space(8), m.put(b"through a pipe"), m.space(64)
    pollfds = m.put(struct.pack("<ihhihh", 3, 1, 0, 4, 4, 0))
    event = m.put(struct.pack("<IQ", 1, 3) + b"\0" * 4)
    iov = m.put(struct.pack("<QQQQ", text, 7, text + 7, 7))
    return seed([
        request(PIPE, fds, 0),
        request(WRITEV, 4, iov, 2, (1 << 64) - 1, 0),
        request(POLL, pollfds, 2, 0),
        request(READ, 3, out, 64),
        request(EPOLL_CREATE, 0),
        request(EPOLL_CTL, 5, 1, 3, event),
        request(EPOLL_WAIT, 5, out, 4, 0),
        request(EVENTFD, 1, 0),
        request(DUP, 3, (1 << 64) - 1, 0),
        request(CLOSE_RANGE, 3, 100, 0),
    ], m)


def unix_sockets():
    m = Memory()
    name = m.put(struct.pack("<H", AF_UNIX) + b"/data/s.sock\0")
    abstract = m.put(struct.pack("<H", AF_UNIX) + b"\0abstract")
    address, length = m.space(128), m.put(struct.pack("<I", 128))
    text = m.put(b"datagram")
    return seed([
        request(SOCKET, AF_UNIX, SOCK_STREAM, 0),
        request(BIND, 3, name, 15),
        request(LISTEN, 3, 4),
        request(SOCKET, AF_UNIX, SOCK_STREAM, 0),
        request(CONNECT, 4, name, 15),
        request(ACCEPT, 3, address, length, 0),
        request(GETSOCKNAME, 3, address, length),
        request(SOCKET, AF_UNIX, SOCK_DGRAM, 0),
        request(BIND, 6, abstract, 11),
        request(SENDTO, 4, text, 8, 0, 0, 0),
        request(RECVFROM, 5, address, 128, 0x40, 0, 0),
        request(UNLINKAT, AT_FDCWD, m.string("s.sock"), 0),
    ], m)


def fd_passing():
    m = Memory()
    pair, text, out = m.space(8), m.put(b"x"), m.space(64)
    iov = m.put(struct.pack("<QQ", text, 1))
    control = m.put(struct.pack("<QiiiI", 20, 1, 1, 0, 0))
    send = m.put(struct.pack("<QIIQQQQiI", 0, 0, 0, iov, 1, control, 24, 0, 0))
    in_iov = m.put(struct.pack("<QQ", out, 64))
    in_control = m.space(64)
    receive = m.put(struct.pack("<QIIQQQQiI", 0, 0, 0, in_iov, 1, in_control, 64, 0, 0))
    return seed([
        request(SOCKETPAIR, AF_UNIX, SOCK_STREAM, 0, pair),
        request(SENDMSG, 3, send, 0),
        request(RECVMSG, 4, receive, 0x40000000),
        request(TRANSFER, 1, 3, 0, 4, 0, 16),
    ], m)


def shared_mappings():
    """Inside the harness's mappable window (fuzzing::MAPPABLE), up to its end."""
    m = Memory()
    name, text = m.string("mapped"), m.put(b"through the file")
    window, page = 0x100000, 4096
    return seed([
        request(OPENAT, AT_FDCWD, name, O_RDWR | O_CREAT, 0o644),
        request(FTRUNCATE, 3, page),
        request(MAP_FILE, 3, window, 2 * page, 3, 0),
        request(WRITE, 3, text, 16),
        request(MSYNC, window, 2 * page, 4),
        request(OPENAT, AT_FDCWD, window + page, O_RDONLY, 0),
        request(REMAP_FILE, window, page, window + 4 * page, 3 * page),
        request(UNMAP_FILE, window, 8 * page),
        request(CLOSE, 3),
    ], m)


def broken_ring():
    return seed([request(0)], Memory(), raw_tail=1000)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "offload_server")
    os.makedirs(directory, exist_ok=True)
    for make in (files, directories, pipes_and_polling, unix_sockets, fd_passing, shared_mappings,
                 broken_ring):
        with open(os.path.join(directory, "seed-" + make.__name__.replace("_", "-")), "wb") as out:
            out.write(make())


if __name__ == "__main__":
    main()
