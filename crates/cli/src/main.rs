//! `atoll`: run unmodified static Linux programs in isles.
#![deny(unsafe_code)]

mod binfmt;
mod error;
mod image;
mod isles;
mod manifest;
mod project;
mod run;
mod size;

use clap::{Parser, Subcommand};

use crate::error::CliError;
use crate::image::{images, pack, registry};

/// Large buffers (programs, layers in flight) on huge pages.
#[global_allocator]
static ALLOCATOR: atoll_vmm::alloc::LargeOnHugePages = atoll_vmm::alloc::LargeOnHugePages;

/// The built-in isle kernel.
pub static KERNEL_IMAGE: &[u8] = include_bytes!(env!("ATOLL_KERNEL_ELF"));
/// Its sha256 digest, as OCI writes it (computed at build time).
pub const KERNEL_DIGEST: &str = env!("ATOLL_KERNEL_DIGEST");

#[derive(Parser)]
#[command(
    name = "atoll",
    version,
    about = "Run unmodified static Linux programs in isles: small unikernels on their own cores and memory",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Boot an isle and run PROGRAM (or the project in a directory) in it, with ARGS; exits with its status.
    Run(Box<run::RunArgs>),
    /// Make a new project (atoll.toml, source, README) that builds and runs as it is.
    Init(project::InitArgs),
    /// Build a project's program statically, as its atoll.toml says, and its image.
    Build(project::BuildArgs),
    /// List the images in the local store.
    Images(images::ImagesArgs),
    /// Forget images by name (their blobs go with `atoll prune`).
    Rmi(images::RmiArgs),
    /// Give an image another name.
    Tag(images::TagArgs),
    /// Show an image's manifest and config.
    Inspect(images::InspectArgs),
    /// List the isle kernels: the built-in one, those pulled on their own, those in images.
    Kernels(images::KernelsArgs),
    /// Delete the blobs no image uses.
    #[command(after_help = "Example:\n  atoll rmi hello:0.1.0 && atoll prune")]
    Prune {
        /// Print nothing but errors
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write an image as one runnable file (FILE.isle)
    Pack(pack::PackArgs),
    /// Put a .isle file's image into the local store
    Load(pack::LoadArgs),
    /// Register .isle files with binfmt_misc, so ./FILE.isle runs in an isle
    Binfmt(binfmt::BinfmtArgs),
    /// Push a local image to an OCI registry.
    Push(registry::PushArgs),
    /// Pull an image from an OCI registry into the local store.
    Pull(registry::PullArgs),
    /// Keep credentials for a registry (checked first).
    Login(registry::LoginArgs),
    /// List a registry's repositories and their tags.
    Search(registry::SearchArgs),
    /// Print a shell completion script for bash, zsh or fish.
    #[command(
        after_help = "Examples:\n  atoll completions bash > /etc/bash_completion.d/atoll\n  atoll completions zsh > \"${fpath[1]}/_atoll\"\n  atoll completions fish > ~/.config/fish/completions/atoll.fish"
    )]
    Completions {
        /// The shell
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// List the isles running on this host.
    Ps(isles::PsArgs),
    /// Stop isles: SIGTERM, then SIGKILL after a timeout.
    Stop(isles::StopArgs),
    /// Print what a detached isle (`run -d`) wrote.
    Logs(isles::LogsArgs),
    /// Live figures per isle: core use, offload calls per second, memory.
    Top(isles::TopArgs),
}

/// binfmt_misc runs `./FILE.isle ARGS` as `atoll /path/FILE.isle ARGS`:
/// that is `atoll run -- /path/FILE.isle ARGS`.
fn binfmt_arguments() -> Option<Vec<std::ffi::OsString>> {
    let mut arguments: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first = std::path::Path::new(arguments.get(1)?);
    if !first.as_os_str().as_encoded_bytes().contains(&b'/') || !pack::is_pack(first) {
        return None;
    }
    arguments.splice(1..1, ["run".into(), "--".into()]);
    Some(arguments)
}

fn main() {
    // Only pay for a log filter when asked for one.
    if std::env::var_os("ATOLL_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_env("ATOLL_LOG"))
            .with_writer(std::io::stderr)
            // A hung-up terminal fails every write: that must not panic
            // the thread logging (a vCPU's, say).
            .log_internal_errors(false)
            .init();
    }
    let cli = Cli::parse_from(binfmt_arguments().unwrap_or_else(|| std::env::args_os().collect()));
    let status = match execute(cli.command) {
        Ok(status) => status,
        Err(error) => {
            eprintln!("atoll: {error}");
            error.status()
        }
    };
    std::process::exit(status);
}

/// Runs one command; its exit status, or the error to print.
fn execute(command: Command) -> Result<i32, CliError> {
    match command {
        Command::Run(args) => run::run(*args),
        Command::Init(args) => project::init(args),
        Command::Build(args) => project::build(args),
        Command::Images(args) => images::images(args),
        Command::Rmi(args) => images::rmi(args),
        Command::Tag(args) => images::tag(args),
        Command::Inspect(args) => images::inspect(args),
        Command::Kernels(args) => images::kernels(args),
        Command::Prune { quiet } => images::prune(quiet),
        Command::Pack(args) => pack::pack(args),
        Command::Load(args) => pack::load(args),
        Command::Binfmt(args) => binfmt::binfmt(args),
        Command::Push(args) => registry::push(args),
        Command::Pull(args) => registry::pull(args),
        Command::Login(args) => registry::login(args),
        Command::Search(args) => registry::search(args),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "atoll", &mut std::io::stdout());
            Ok(0)
        }
        Command::Ps(args) => isles::ps(args),
        Command::Stop(args) => isles::stop(args),
        Command::Logs(args) => isles::logs(args),
        Command::Top(args) => isles::top(args),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_build_time_kernel_digest_is_the_embedded_kernels() {
        assert_eq!(
            crate::KERNEL_DIGEST,
            crate::image::store::sha256(crate::KERNEL_IMAGE)
        );
    }
}
