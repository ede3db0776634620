//! `atoll binfmt install|uninstall|status`: registers `.isle` files with
//! the kernel's binfmt_misc, so that `./hello.isle args` runs as
//! `atoll run hello.isle args` (matched by the file's magic, not its name).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::error::CliError;

const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
/// The registration's name under /proc/sys/fs/binfmt_misc.
const ENTRY: &str = "atoll-isle";

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  sudo atoll binfmt install && ./hello.isle world\n  sudo atoll binfmt uninstall"
)]
pub struct BinfmtArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand, Debug)]
enum Action {
    /// Register .isle files, run by this atoll binary (needs root)
    Install,
    /// Remove the registration (needs root)
    Uninstall,
    /// Show whether .isle files are registered, and with which atoll
    Status,
}

/// The register line: match the magic at offset 0, run `atoll FILE ARGS`.
fn register_line(interpreter: &Path) -> String {
    let magic: String = crate::image::pack::MAGIC
        .iter()
        .map(|byte| format!("\\x{byte:02x}"))
        .collect();
    format!(":{ENTRY}:M:0:{magic}::{}:", interpreter.display())
}

/// Mounts binfmt_misc if it isn't (as systemd would at boot).
fn ensure_mounted() -> Result<(), CliError> {
    if Path::new(BINFMT_DIR).join("register").exists() {
        return Ok(());
    }
    let mounted = std::process::Command::new("mount")
        .args(["-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if mounted && Path::new(BINFMT_DIR).join("register").exists() {
        Ok(())
    } else {
        Err(CliError::failed(format!(
            "binfmt_misc isn't available at {BINFMT_DIR}: run as root, or load it (modprobe binfmt_misc); `atoll run FILE.isle` works without it"
        )))
    }
}

fn entry_path() -> PathBuf {
    Path::new(BINFMT_DIR).join(ENTRY)
}

fn remove_entry() -> Result<bool, CliError> {
    let entry = entry_path();
    if !entry.exists() {
        return Ok(false);
    }
    std::fs::write(&entry, "-1")
        .map(|()| true)
        .map_err(|error| CliError::failed(format!("{}: {error} (run as root)", entry.display())))
}

pub fn binfmt(args: BinfmtArgs) -> Result<i32, CliError> {
    let message = match args.action {
        Action::Install => install(),
        Action::Uninstall => ensure_mounted()
            .and_then(|()| remove_entry())
            .map(|removed| {
                if removed {
                    "removed the .isle registration".to_string()
                } else {
                    ".isle files weren't registered".to_string()
                }
            }),
        Action::Status => ensure_mounted().map(|()| match std::fs::read_to_string(entry_path()) {
            Ok(text) => {
                let interpreter = text
                    .lines()
                    .find_map(|line| line.strip_prefix("interpreter "))
                    .unwrap_or("?")
                    .to_string();
                let state = text.lines().next().unwrap_or("?").to_string();
                format!(".isle files are registered ({state}), run by {interpreter}")
            }
            Err(_) => ".isle files aren't registered: run `atoll binfmt install`".into(),
        }),
    }?;
    println!("{message}");
    Ok(0)
}

fn install() -> Result<String, CliError> {
    ensure_mounted()?;
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|error| CliError::failed(format!("cannot find the atoll binary: {error}")))?;
    // Replacing keeps `install` idempotent, and points at this binary.
    remove_entry()?;
    let register = Path::new(BINFMT_DIR).join("register");
    std::fs::write(&register, register_line(&exe)).map_err(|error| {
        CliError::failed(format!("{}: {error} (run as root)", register.display()))
    })?;
    Ok(format!(
        "registered .isle files: ./FILE.isle ARGS now runs `{} run FILE.isle ARGS`",
        exe.display()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_register_line_escapes_every_magic_byte() {
        let line = super::register_line(std::path::Path::new("/usr/bin/atoll"));
        assert!(
            line.starts_with(":atoll-isle:M:0:\\x23\\x21\\x2f"),
            "{line}"
        );
        assert!(
            line.ends_with("\\x7f\\x49\\x53\\x4c\\x45\\x30\\x31\\x0a::/usr/bin/atoll:"),
            "{line}"
        );
    }
}
