//! `atoll run`: boot an isle, run a program, exit with its status.

mod args;
mod backend;
mod mounts;
mod program;
mod source;
pub(crate) mod tmp;
mod user;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use atoll_abi::boot::flags;
use atoll_vmm::{IsleConfig, IsleError, NetPolicy, Outcome};

pub use self::args::RunArgs;
use self::args::{check_memory, default_memory_limit, environment};
use self::backend::{address_space, choose_backend, kernel_symbols_file};
use self::mounts::{mounts, parse_rootfs, Root, View};
use self::program::{read_program, read_program_in_root};
use self::source::apply_manifest;
use self::tmp::PrivateTmp;
use crate::error::{CliError, STATUS_ATOLL_FAILED};
use crate::size::parse_size;

/// `atoll run`: the program's exit status, or why it couldn't run (or
/// what killed it).
pub fn run(args: RunArgs) -> Result<i32, CliError> {
    atoll_vmm::host::handle_signals(&atoll_vmm::program_signals::PASSED_ON, on_signal);
    // Whatever keeps what PROGRAM names from running (a manifest, an
    // image, a pull) is reported as bad input to `atoll run`.
    let mut args = apply_manifest(args).map_err(CliError::usage)?;
    if args.entrypoint.is_some() && args.root.is_none() {
        return Err(CliError::usage(
            "--entrypoint: only a container image has an Entrypoint to replace: give the program itself",
        ));
    }
    let program_arg = PathBuf::from(&args.command[0]);
    let config_path = atoll_manager::config::path();
    let (mut host_config, partitions) =
        atoll_manager::config::load(&config_path).map_err(CliError::usage)?;
    if let Some(list) = &args.host_cores {
        let cpus = atoll_manager::topology::parse_list(list)
            .filter(|cpus| !cpus.is_empty())
            .ok_or_else(|| {
                CliError::usage(format!(
                    "--host-cores {list}: use a CPU list such as 0 or 0,36"
                ))
            })?;
        host_config.host_cpus = Some(cpus);
    }
    let partition = match args.index {
        Some(index) => Some(partitions.get(index).cloned().ok_or_else(|| {
            CliError::usage(format!(
                "-i {index}: {} has {} partition(s); add [[partition]] entries to it",
                config_path.display(),
                partitions.len()
            ))
        })?),
        None => None,
    };
    let memory_arg = match partition.as_ref().and_then(|p| p.memory.as_deref()) {
        Some(text) => Some(parse_size(text).map_err(|message| {
            CliError::usage(format!(
                "{}: partition memory: {message}",
                config_path.display()
            ))
        })?),
        None => args.memory,
    };
    let memory_limit = match memory_arg {
        Some(requested) => check_memory(requested)?,
        None => default_memory_limit(),
    };
    // Without -m the isle holds no memory in the registry, so it blocks no
    // other isle; it may still use what the host has, as a process may.
    let memory_held = memory_arg.map_or(0, |_| memory_limit);
    if args.detach && std::env::var_os(crate::isles::LOG_ENV).is_none() {
        return detach();
    }
    // The program and the environment are checked before anything is
    // claimed: a bad one holds no core, however it fails.
    let envp = environment(&args.env)?;
    let workdir = match &args.workdir {
        Some(dir) if dir.starts_with('/') => Some(atoll_vmm::sandbox::normalize(dir)),
        Some(dir) => {
            return Err(CliError::usage(format!(
                "-w {dir}: give an absolute path inside the isle"
            )))
        }
        None => None,
    };
    let shown = program_arg.display();
    let image_to_run = args.image.take();
    let tree = match (args.root.take(), &args.rootfs) {
        (Some(_), Some(_)) => {
            return Err(CliError::usage(
                "--rootfs: the image has a root filesystem of its own: give one or the other",
            ))
        }
        (Some(root), None) => Some(root),
        (None, Some(text)) => Some(parse_rootfs(text)?),
        (None, None) => None,
    };
    // A host program sees the host's system directories; an image, or a
    // program in a root filesystem, has its own.
    let root = match (&tree, &image_to_run) {
        (Some(tree), _) => Root::Tree(tree),
        (None, Some(_)) => Root::Empty,
        (None, None) => Root::HostSystem,
    };
    let (kernel_image, image, exe_path) = match (image_to_run, &tree) {
        (Some(image), _) => (image.kernel, image.program, image.exe_path),
        (None, Some(tree)) => {
            let files = atoll_vmm::sandbox::Files::new(std::slice::from_ref(tree), "/")
                .map_err(|error| CliError::usage(format!("--rootfs: {error}")))?;
            let (image, path) = read_program_in_root(&files, &program_arg, &envp)?;
            (None, image, path)
        }
        (None, None) => {
            let (image, path) = read_program(&program_arg)?;
            (None, image, path)
        }
    };
    if let Err(error) = atoll_vmm::isle::check_program(&image) {
        return Err(CliError::not_executable(format!("{shown}: {error}")));
    }
    let (cores, cpus) = match &partition {
        Some(partition) => (
            u64::from(partition.cores.unwrap_or(1)),
            partition.cpus.clone(),
        ),
        None => (args.cores.unwrap_or(1), args.cpus.clone()),
    };
    let request = crate::isles::request(cores, cpus.as_deref(), memory_held, args.overcommit)?;
    let command_text = args
        .command
        .iter()
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let registration = crate::isles::Registration::claim(
        &host_config,
        &request,
        args.name.clone(),
        command_text,
        memory_held,
        args.wait,
    )?;
    // From here a terminating signal must give the registration back,
    // whether the isle runs yet or has already ended.
    *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()) = (None, Some(registration.id));
    let vcpu_cores: Vec<usize> = registration
        .grant
        .cpus
        .iter()
        .map(|&cpu| cpu as usize)
        .collect();
    let service_core = registration.grant.service_cpu.map(|cpu| cpu as usize);
    let tmp = PrivateTmp::create(args.tmp_size.unwrap_or(memory_limit))
        .map_err(|error| CliError::failed(format!("cannot create a private /tmp: {error}")))?;
    *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()) = (
        tmp.directory().map(Path::to_path_buf),
        Some(registration.id),
    );
    let View {
        mounts,
        cwd,
        hidden,
    } = mounts(&args.volumes, &args.files, &tmp, root)?;
    let files = atoll_vmm::sandbox::Files::new(&mounts, "/")
        .map_err(|error| CliError::failed(format!("the isle's files: {error}")))?;
    if let Some(dir) = &workdir {
        check_workdir(&files, dir)?;
    }
    let cwd = workdir.unwrap_or(cwd);
    let user = match &args.user {
        Some(text) => Some(user::resolve_user(&files, text)?),
        None => None,
    };
    let private_dirs = mounts
        .iter()
        .filter(|mount| mount.host.starts_with(&tmp.path) && !mount.read_only)
        .map(|mount| mount.guest.clone())
        .collect();
    let exe_path = exe_path.into_os_string().into_vec();

    let mut boot_flags = 0;
    if args.trace {
        boot_flags |= flags::TRACE;
    }
    if args.syscall_summary {
        boot_flags |= flags::SYSCALL_SUMMARY;
    }
    if args.debug_panic {
        boot_flags |= flags::DEBUG_PANIC;
    }
    atoll_vmm::host::ignore_sigpipe();
    let mut backend = choose_backend(&args.backend, &args.kvm_device, args.gdb);
    let gdb = match &mut backend {
        atoll_vmm::BackendChoice::Qemu(options) => options.gdb.as_mut(),
        atoll_vmm::BackendChoice::Kvm { gdb, .. } => gdb.as_mut(),
    };
    if let Some(gdb) = gdb {
        let kernel = kernel_image.as_deref().unwrap_or(crate::KERNEL_IMAGE);
        gdb.program_symbols = Some(PathBuf::from(OsString::from_vec(exe_path.clone())));
        gdb.kernel_symbols = kernel_symbols_file(kernel);
    }
    let mut memory_limit = memory_limit;
    if memory_arg.is_none() && matches!(backend, atoll_vmm::BackendChoice::Qemu(_)) {
        memory_limit = memory_limit.min(atoll_vmm::backend::qemu::MAX_MEMORY);
    }
    let memory_size = address_space(&backend, memory_limit);
    let config = IsleConfig {
        backend,
        kernel_image: kernel_image.as_deref().unwrap_or(crate::KERNEL_IMAGE),
        program_image: std::sync::Arc::new(image),
        argv: args.command.into_iter().map(OsString::into_vec).collect(),
        envp,
        exe_path,
        memory_size,
        memory_limit,
        flags: boot_flags,
        cpu_count: vcpu_cores.len() as u64,
        vcpu_cores,
        service_core,
        private_dirs,
        mounts,
        hidden_paths: hidden,
        cwd,
        user,
        net: NetPolicy {
            published: args.publish,
            outbound: args.net,
        },
        rewrite: !args.no_rewrite,
        stats_path: crate::isles::stats_path(registration.id),
        numa_node: registration.grant.node,
    };
    let outcome = atoll_vmm::run(config);
    *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()) = (None, Some(registration.id));
    drop(tmp);
    let mut registration = registration;
    let ended = match outcome {
        Ok(Outcome::Exited(status)) => Ok(i32::from(status)),
        Ok(Outcome::Killed { signal, report }) if report.is_empty() => Ok(128 + signal as i32),
        Ok(Outcome::Killed { signal, report }) => {
            Err(CliError::with_status(128 + signal as i32, report))
        }
        Ok(Outcome::Crashed(report)) => Err(CliError::failed(format!("isle crashed: {report}"))),
        // atoll_vmm::run boots what an execve asks for; it never ends so.
        Ok(Outcome::Exec) => Err(CliError::failed("isle crashed: an execve was left unrun")),
        Err(IsleError::Program(error)) => {
            Err(CliError::not_executable(format!("{shown}: {error}")))
        }
        Err(IsleError::Setup(error)) => Err(CliError::failed(format!("{shown}: {error}"))),
        Err(error) => Err(CliError::failed(error)),
    };
    registration.finish(
        ended
            .as_ref()
            .map_or_else(CliError::status, |status| *status),
    );
    *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()) = (None, None);
    ended
}

/// `-w DIR` must name a directory the isle sees: docker would make it, but
/// a root filesystem is read-only by default, so a typo is refused instead.
fn check_workdir(files: &atoll_vmm::sandbox::Files, dir: &str) -> Result<(), CliError> {
    let fd = files
        .open_path(i64::from(libc::AT_FDCWD), dir, true, false)
        .map_err(|_| CliError::usage(format!("-w {dir}: no such directory in the isle")))?;
    match std::fs::File::from(fd).metadata() {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        _ => Err(CliError::usage(format!(
            "-w {dir}: is not a directory in the isle"
        ))),
    }
}

/// `atoll run -d`: the same command again as a child in its own process
/// group with its output in a log; prints the isle's id once it has one.
fn detach() -> Result<i32, CliError> {
    let log_path = crate::isles::new_log_path()?;
    let log = atoll_manager::state::private_file(&log_path, true)
        .map_err(|error| CliError::failed(format!("{}: {error}", log_path.display())))?;
    let spawned = std::env::current_exe().and_then(|exe| {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(crate::isles::LOG_ENV, &log_path)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
    });
    let mut child =
        spawned.map_err(|error| CliError::failed(format!("cannot start the isle: {error}")))?;
    Ok(match crate::isles::wait_for_registration(&mut child) {
        Some(id) => {
            println!("isle {id}");
            0
        }
        None => {
            // It ended before it had an isle: show why.
            let output = std::fs::read(&log_path).unwrap_or_default();
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &output);
            let _ = std::fs::remove_file(&log_path);
            child
                .wait()
                .ok()
                .and_then(|status| status.code())
                .unwrap_or(STATUS_ATOLL_FAILED)
        }
    })
}

/// What a terminating signal must clean up: the private /tmp and the
/// isle's registration.
static CLEANUP: std::sync::Mutex<(Option<PathBuf>, Option<u32>)> =
    std::sync::Mutex::new((None, None));

/// One of [`PASSED_ON`](atoll_vmm::program_signals::PASSED_ON): while an isle runs it goes on to the program,
/// whose disposition decides (the run ends when the isle does). Else, or
/// when the isle's kernel doesn't take it within a second, it acts on atoll
/// as its default would: SIGWINCH, SIGCHLD and SIGCONT do nothing, the
/// stop signals stop atoll, the others clean up, then exit with the status
/// the signal would have given.
fn on_signal(signal: i32) {
    use atoll_vmm::program_signals::{pass_on_and_wait, stop_atoll, unhandled, Unhandled};
    if pass_on_and_wait(signal) {
        return;
    }
    match unhandled(signal) {
        Unhandled::Nothing => return,
        Unhandled::Stop => return stop_atoll(signal),
        Unhandled::End => {}
    }
    let (tmp, isle) = std::mem::take(&mut *CLEANUP.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(tmp) = tmp {
        let _ = std::fs::remove_dir_all(tmp);
    }
    if let Some(id) = isle {
        crate::isles::release(id, Some(128 + signal));
    }
    std::process::exit(128 + signal);
}
