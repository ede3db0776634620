//! EXEC: execve(2)'s checks, on the isle's own files. The program must be
//! a regular file the isle may execute: an ELF the loader takes, or a
//! `#!` script, whose interpreter runs it (to 4 levels, as Linux). The
//! arguments and environment are read from guest memory, bounded as
//! Linux bounds them. What is accepted waits in `crate::process` for the
//! isle that replaces this one.

use atoll_abi::boot::ExecSignals;
use atoll_abi::linux::errno::{EFAULT, EINVAL, ELOOP, ENAMETOOLONG, ENOENT};
use vm_memory::{Bytes, GuestAddress};

use crate::guest::memory::GuestRam;
use crate::image::loader;
use crate::process::Replacement;
use crate::sandbox::Files;

/// Linux's bound on the arguments and environment together (the default
/// 8 MiB stack's quarter).
const MAX_ARGUMENT_BYTES: usize = 2 << 20;
/// Most strings in argv or envp (MAX_ARG_STRINGS is larger; this is
/// what fits in the bytes above anyway).
const MAX_STRINGS: usize = 1 << 17;
/// Longest one string (MAX_ARG_STRLEN).
const MAX_STRING: usize = 32 * 4096;
/// Scripts whose interpreter is a script: at most this deep.
const MAX_INTERPRETERS: usize = 4;
/// Largest program read.
const MAX_PROGRAM: u64 = 1 << 30;
const ENOEXEC: i64 = libc::ENOEXEC as i64;
const E2BIG: i64 = libc::E2BIG as i64;

/// EXEC(dirfd, path, argv, envp, flags, signals).
pub(super) fn exec(ram: &GuestRam, files: &Files, a: [u64; 6]) -> Result<i64, i64> {
    let [dirfd, path, argv, envp, flags, signals] = a;
    let flags = i32::try_from(flags).map_err(|_| EINVAL)?;
    if flags & !(libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) != 0 {
        return Err(EINVAL);
    }
    let path = super::fs::guest_string(ram, path)?;
    let of_fd = path.is_empty() && flags & libc::AT_EMPTY_PATH != 0;
    if path.is_empty() && !of_fd {
        return Err(ENOENT);
    }
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    let mut budget = MAX_ARGUMENT_BYTES;
    let mut argv = strings(ram, argv, &mut budget)?;
    let envp = strings(ram, envp, &mut budget)?;
    let signals: ExecSignals = ExecSignals {
        blocked: ram
            .memory()
            .read_obj(GuestAddress(signals))
            .map_err(|_| EFAULT)?,
        ignored: ram
            .memory()
            .read_obj(GuestAddress(signals + 8))
            .map_err(|_| EFAULT)?,
    };
    let mut program = path;
    for level in 0..=MAX_INTERPRETERS {
        // The program itself as execveat's flags say; its interpreters
        // as execve finds them.
        let (image, exe_path) = match level {
            0 if of_fd => files.executable_fd(dirfd as i64, MAX_PROGRAM)?,
            // /proc/self/exe is the program this process runs, wherever it
            // came from (a host program may be on no path of the isle's).
            0 => match files
                .own_exe(&program)
                .filter(|_| follow)
                .zip(crate::process::program())
            {
                Some((path, image)) => (image.to_vec(), path),
                None => files.executable_following(dirfd as i64, &program, follow, MAX_PROGRAM)?,
            },
            _ => files.executable(i64::from(libc::AT_FDCWD), &program, MAX_PROGRAM)?,
        };
        if level == 0 && of_fd {
            program = exe_path.clone();
        }
        match interpreter_line(&image) {
            Some((interpreter, argument)) => {
                // As Linux: interpreter [argument] script args-after-argv[0].
                let mut replaced = vec![interpreter.clone().into_bytes()];
                replaced.extend(argument.map(String::into_bytes));
                replaced.push(program.into_bytes());
                replaced.extend(argv.into_iter().skip(1));
                argv = replaced;
                program = interpreter;
            }
            None => {
                let parsed = loader::parse_program(&image).map_err(|_| ENOEXEC)?;
                if let Some(interpreter) = &parsed.interpreter {
                    // A missing ld.so is the program's ENOENT.
                    files.executable(i64::from(libc::AT_FDCWD), interpreter, MAX_PROGRAM)?;
                }
                crate::process::replace_with(Replacement {
                    image,
                    argv,
                    envp,
                    exe_path: exe_path.into_bytes(),
                    signals,
                });
                return Ok(0);
            }
        }
    }
    Err(ELOOP)
}

/// A `#!` line's interpreter and its one optional argument.
fn interpreter_line(image: &[u8]) -> Option<(String, Option<String>)> {
    let rest = image.strip_prefix(b"#!")?;
    let line = &rest[..rest
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(rest.len())
        .min(255)];
    let line = String::from_utf8_lossy(line);
    let line = line.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    let (interpreter, argument) = match line.split_once([' ', '\t']) {
        Some((interpreter, argument)) => (interpreter, Some(argument.trim().to_string())),
        None => (line, None),
    };
    (!interpreter.is_empty()).then(|| {
        (
            interpreter.to_string(),
            argument.filter(|argument| !argument.is_empty()),
        )
    })
}

/// A NULL-terminated array of C strings in guest memory (NULL: none).
fn strings(ram: &GuestRam, array: u64, budget: &mut usize) -> Result<Vec<Vec<u8>>, i64> {
    let mut found = Vec::new();
    if array == 0 {
        return Ok(found);
    }
    for index in 0..=MAX_STRINGS as u64 {
        let at = array.checked_add(index * 8).ok_or(EFAULT)?;
        let pointer: u64 = ram
            .memory()
            .read_obj(GuestAddress(at))
            .map_err(|_| EFAULT)?;
        if pointer == 0 {
            return Ok(found);
        }
        let string = c_string(ram, pointer)?;
        *budget = budget.checked_sub(string.len() + 1 + 8).ok_or(E2BIG)?;
        found.push(string);
    }
    Err(E2BIG)
}

/// One C string in guest memory, without its NUL.
fn c_string(ram: &GuestRam, address: u64) -> Result<Vec<u8>, i64> {
    match super::fs::guest_c_string(ram, address, MAX_STRING) {
        Err(ENAMETOOLONG) => Err(E2BIG),
        read => read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_lines_read_as_linux_reads_them() {
        assert_eq!(
            interpreter_line(b"#!/bin/sh\necho"),
            Some(("/bin/sh".into(), None))
        );
        assert_eq!(
            interpreter_line(b"#! /usr/bin/env  python3 -u \n"),
            Some(("/usr/bin/env".into(), Some("python3 -u".into())))
        );
        assert_eq!(interpreter_line(b"#!\n"), None);
        assert_eq!(interpreter_line(b"\x7fELF"), None);
    }
}
