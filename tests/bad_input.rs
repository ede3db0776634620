//! Bad input gets a clear one-line error and a non-zero exit, never a panic or a hang.

mod common;

use std::path::PathBuf;

use common::*;

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("atoll-bad-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn hello_bytes() -> Vec<u8> {
    std::fs::read(program(Flavor::Musl, "hello")).unwrap()
}

fn run_file(path: &std::path::Path) -> std::process::Output {
    run(&["run", path.to_str().unwrap()])
}

#[test]
fn a_missing_program_is_127() {
    let output = run(&["run", "/nonexistent/prog"]);
    assert_one_line_error(&output, 127, &["/nonexistent/prog", "no such file"]);
    let output = run(&["run", "no-such-program-anywhere"]);
    assert_one_line_error(&output, 127, &["no-such-program-anywhere", "PATH"]);
}

#[test]
fn a_directory_is_not_a_program() {
    let output = run(&["run", "/tmp/"]);
    assert_one_line_error(&output, 126, &["is a directory"]);
}

#[test]
fn non_elf_files_are_refused() {
    let text = scratch("notes.txt", b"just some text\n");
    assert_one_line_error(
        &run_file(&text),
        126,
        &["not an ELF executable", "6a 75 73 74"],
    );
    let empty = scratch("empty", b"");
    assert_one_line_error(&run_file(&empty), 126, &["not an ELF executable", "empty"]);
    let script = scratch("script.sh", b"#!/bin/sh\necho hi\n");
    assert_one_line_error(&run_file(&script), 126, &["is a script", "#!/bin/sh"]);
}

#[test]
fn thirty_two_bit_and_foreign_elves_are_refused() {
    let mut elf32 = hello_bytes();
    elf32[4] = 1; // ELFCLASS32
    assert_one_line_error(
        &run_file(&scratch("elf32", &elf32)),
        126,
        &["32-bit", "x86_64"],
    );
    let mut arm = hello_bytes();
    arm[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    assert_one_line_error(
        &run_file(&scratch("arm", &arm)),
        126,
        &["aarch64", "x86_64"],
    );
}

#[test]
fn a_dynamically_linked_program_whose_interpreter_is_missing_names_it() {
    let mut bytes = std::fs::read(program(Flavor::GlibcDynamic, "hello")).unwrap();
    let name = b"/lib64/ld-linux-x86-64.so.2\0";
    let at = bytes
        .windows(name.len())
        .position(|window| window == name)
        .expect("PT_INTERP names glibc's loader");
    bytes[at + name.len() - 2] = b'9';
    let output = run_file(&scratch("no-interpreter", &bytes));
    assert_one_line_error(
        &output,
        126,
        &[
            "interpreter /lib64/ld-linux-x86-64.so.9 is not in the isle",
            "No such file",
            "--rootfs",
        ],
    );
    // With its interpreter there, it runs.
    let output = run(&["run", "/bin/true"]);
    assert_eq!(status(&output), 0, "{}", stderr(&output));
}

#[test]
fn corrupt_and_truncated_elves_are_refused() {
    let bytes = hello_bytes();
    let header_only = scratch("header-only", &bytes[..40]);
    assert_one_line_error(&run_file(&header_only), 126, &["corrupt ELF", "truncated"]);
    let half = scratch("half", &bytes[..bytes.len() / 2]);
    assert_one_line_error(&run_file(&half), 126, &["corrupt ELF", "truncated"]);
    let mut bad_phentsize = bytes.clone();
    bad_phentsize[54] = 13;
    assert_one_line_error(
        &run_file(&scratch("phentsize", &bad_phentsize)),
        126,
        &["corrupt ELF"],
    );
}

#[test]
fn segments_outside_the_isle_are_refused() {
    let mut bytes = hello_bytes();
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let phnum = u16::from_le_bytes(bytes[56..58].try_into().unwrap()) as usize;
    // Move the last PT_LOAD to 200 GiB: beyond any default address space
    // (at most 144 GiB on KVM, 2 GiB under QEMU).
    let last_load = (0..phnum)
        .map(|index| phoff + index * 56)
        .rfind(|&header| u32::from_le_bytes(bytes[header..header + 4].try_into().unwrap()) == 1)
        .unwrap();
    bytes[last_load + 16..last_load + 24].copy_from_slice(&(200u64 << 30).to_le_bytes());
    let output = run_file(&scratch("far", &bytes));
    assert_one_line_error(
        &output,
        125,
        &["does not fit in the isle's memory", "raise -m"],
    );
}

#[test]
fn memory_sizes_are_checked() {
    let hello = program(Flavor::Musl, "hello");
    let hello = hello.to_str().unwrap();
    assert_one_line_error(
        &run(&["run", "-m", "1M", hello]),
        2,
        &["-m 1M is too small", "8M"],
    );
    assert_one_line_error(
        &run(&["run", "-m", "1T", hello]),
        2,
        &["-m 1T is too large", "256G"],
    );
    assert_one_line_error(
        &run(&["run", "-m", "250G", hello]),
        2,
        &["-m 250G is more than this host has available"],
    );
    let output = run(&["run", "-m", "lots", hello]);
    assert_eq!(status(&output), 2);
    assert!(
        stderr(&output).contains("invalid size 'lots'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_kvm_device_says_what_to_do() {
    let hello = program(Flavor::Musl, "hello");
    // Asked for KVM by name: no falling back to QEMU.
    let output = run(&[
        "run",
        "--backend",
        "kvm",
        "--kvm-device",
        "/nonexistent/kvm",
        hello.to_str().unwrap(),
    ]);
    assert_one_line_error(&output, 125, &["/nonexistent/kvm not found", "kvm module"]);
}

#[test]
fn no_permission_on_kvm_says_what_to_do() {
    // Root may open anything: drop to nobody to see the error users get.
    let Some(nobody) = AsNobody::new("kvm-permission") else {
        return;
    };
    let hello = nobody.copy(&program(Flavor::Musl, "hello"));
    // A root-only device node stands in for /dev/kvm: the machine may have
    // none, and opening is all that is tested.
    let device = nobody.path().join("kvm");
    std::fs::write(&device, b"").unwrap();
    std::fs::set_permissions(&device, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let _slot = isle_slot();
    let output = nobody
        .atoll()
        .env("ATOLL_BACKEND", "kvm")
        .arg("run")
        .arg("--kvm-device")
        .arg(&device)
        .arg(&hello)
        .output()
        .unwrap();
    assert_one_line_error(
        &output,
        125,
        &[
            &format!("no permission to open {}", device.display()),
            "kvm group",
        ],
    );
}

#[test]
fn a_triple_fault_is_reported() {
    let output = run_program(Flavor::Musl, "idt_smash", &[]);
    assert!(
        stdout(&output).starts_with("idt at 0x"),
        "{}",
        stdout(&output)
    );
    assert_one_line_error(&output, 125, &["isle crashed", "triple fault", "rip 0x"]);
}

#[test]
fn a_kernel_panic_is_reported_with_its_message() {
    let hello = program(Flavor::Musl, "hello");
    let output = run(&["run", "--debug-panic", hello.to_str().unwrap()]);
    assert_one_line_error(
        &output,
        125,
        &[
            "isle crashed: kernel panic",
            "panic requested at boot",
            "main.rs",
        ],
    );
}

#[test]
fn bad_environment_entries_are_refused() {
    let hello = program(Flavor::Musl, "hello");
    let output = run(&["run", "-e", "=value", hello.to_str().unwrap()]);
    assert_one_line_error(&output, 2, &["invalid -e '=value'", "KEY=VALUE"]);
}

#[test]
fn no_program_is_a_usage_error() {
    let output = run(&["run"]);
    assert_eq!(status(&output), 2);
    assert!(stderr(&output).contains("PROGRAM"), "{}", stderr(&output));
}

/// Runs `atoll ARGS` in a registry of its own, killing it if it takes more
/// than `seconds`: a hang is a failure, not a stuck test. Returns what it
/// printed, and the registry's directory to look at.
fn run_bounded(name: &str, args: &[&str], seconds: u64) -> (std::process::Output, PathBuf) {
    let registry = std::env::temp_dir().join(format!(
        "atoll-bad-input-registry-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&registry);
    let _slot = isle_slot();
    let mut child = atoll()
        .args(args)
        .env("ATOLL_RUNTIME_DIR", &registry)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("atoll starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("atoll {args:?} still runs after {seconds}s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    (child.wait_with_output().unwrap(), registry)
}

/// Asserts that `program` is refused with a one-line error holding
/// `needles`, quickly, and before any core was claimed (the registry was
/// never even written).
fn assert_program_refused(name: &str, program: &std::path::Path, needles: &[&str]) {
    let (output, registry) = run_bounded(name, &["run", program.to_str().unwrap()], 10);
    assert_one_line_error(&output, 126, needles);
    assert!(
        !registry.join("isles.json").exists(),
        "{name}: a core was claimed for it"
    );
    let _ = std::fs::remove_dir_all(&registry);
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let dir = scratch("placeholder", b"").parent().unwrap().to_path_buf();
    let fifo = dir.join("fifo");
    let _ = std::fs::remove_file(&fifo);
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    assert_program_refused(
        "fifo",
        &fifo,
        &[
            "fifo: is not a regular file (a FIFO)",
            "give a program file",
        ],
    );
}

#[test]
fn devices_and_directories_are_refused_before_they_are_read() {
    assert_program_refused(
        "zero",
        std::path::Path::new("/dev/zero"),
        &[
            "/dev/zero: is not a regular file (a character device)",
            "give a program file",
        ],
    );
    assert_program_refused(
        "directory",
        std::path::Path::new("/tmp/"),
        &["/tmp/: is a directory", "give a program file"],
    );
}

#[test]
fn huge_files_are_refused_before_they_are_read() {
    // 4 GiB, sparse: reading it whole would take seconds and 4 GiB.
    let huge = scratch("huge", b"not an ELF at all");
    std::fs::File::options()
        .write(true)
        .open(&huge)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    assert_program_refused("huge", &huge, &["not an ELF executable", "6e 6f 74 20"]);
    // With an ELF header: refused by its size.
    let huge_elf = scratch("huge-elf", &hello_bytes()[..64]);
    std::fs::File::options()
        .write(true)
        .open(&huge_elf)
        .unwrap()
        .set_len(4 << 30)
        .unwrap();
    assert_program_refused(
        "huge-elf",
        &huge_elf,
        &["is 4G, more than the 1G atoll takes as a program"],
    );
    let _ = std::fs::remove_file(&huge);
    let _ = std::fs::remove_file(&huge_elf);
}

#[test]
fn a_non_elf_file_is_refused_before_any_core_is_claimed() {
    let text = scratch("claimed.txt", b"just some text\n");
    assert_program_refused(
        "text",
        &text,
        &["claimed.txt: is not an ELF executable", "6a 75 73 74"],
    );
}

#[test]
fn a_guest_path_given_twice_is_refused_naming_both() {
    let hello = program(Flavor::Musl, "hello");
    let output = run(&[
        "run",
        "-v",
        "/tmp:/data",
        "-v",
        "/etc:/data/",
        hello.to_str().unwrap(),
    ]);
    assert_one_line_error(
        &output,
        2,
        &["-v /tmp:/data and -v /etc:/data/ both mount at /data"],
    );
}

#[test]
fn memory_sizes_are_bounded_as_written() {
    let hello = program(Flavor::Musl, "hello");
    let hello = hello.to_str().unwrap();
    let most = u64::MAX.to_string();
    assert_one_line_error(
        &run(&["run", "-m", &most, hello]),
        2,
        &[&format!("-m {most} is too large"), "at most 256G"],
    );
    // Rounded up to whole 2M pages it would be 8M: the README says 8M.
    assert_one_line_error(
        &run(&["run", "-m", "7M", hello]),
        2,
        &["-m 7M is too small", "at least 8M"],
    );
    let output = run(&["run", "-m", "8M", hello]);
    assert_eq!(status(&output), 0, "{}", stderr(&output));
}

#[test]
fn empty_environment_names_are_refused() {
    let hello = program(Flavor::Musl, "hello");
    let output = run(&["run", "-e", "", hello.to_str().unwrap()]);
    assert_one_line_error(&output, 2, &["invalid -e ''", "an empty variable name"]);
    let output = run(&["run", "-e", "=x", hello.to_str().unwrap()]);
    assert_one_line_error(
        &output,
        2,
        &["invalid -e '=x'", "an empty variable name", "KEY=VALUE"],
    );
}
