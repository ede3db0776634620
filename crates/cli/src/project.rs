//! `atoll init` and `atoll build`: a project with an `atoll.toml`, built
//! into a static x86_64 program an isle runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use crate::error::CliError;
use crate::image::images::KernelError;
use crate::image::rootfs::LayerError;
use crate::image::store::{self, Store};
use crate::manifest::{self, Lang, Manifest, RUST_TARGET};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  atoll init hello --lang rust\n  atoll init tool --lang c --path ~/src/tool"
)]
pub struct InitArgs {
    /// The project's name (letters, digits, - and _)
    name: String,
    /// Its language
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Where to make it (default: ./NAME)
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
}

fn manifest_text(name: &str, lang: Lang) -> String {
    let lang = match lang {
        Lang::Rust => "rust",
        Lang::C => "c",
    };
    format!(
        "# What atoll builds and runs; see `atoll run --help` for the flags that override it.\n\
         [app]\nname = \"{name}\"\nversion = \"0.1.0\"\n\n\
         [build]\nlang = \"{lang}\"\n\n\
         [run]\nargs = []\nenv = {{ GREETING = \"Hello\" }}\ncores = 1\nmemory = \"64M\"\n\n\
         [kernel]\nversion = \"{}\"\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// The files of a new project: (path inside it, contents).
fn files(name: &str, lang: Lang) -> Vec<(String, String)> {
    let readme = format!(
        "# {name}\n\nAn app for [atoll](https://example.invalid/atoll) isles.\n\n\
         ```\natoll build          # a static x86_64 program\natoll run . [ARGS]    # in an isle, as atoll.toml says\n```\n"
    );
    let mut files = vec![
        ("atoll.toml".to_string(), manifest_text(name, lang)),
        ("README.md".to_string(), readme),
    ];
    match lang {
        Lang::Rust => {
            files.push((
                "Cargo.toml".into(),
                format!(
                    "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                     [dependencies]\n\n# A project of its own, even inside another workspace.\n[workspace]\n"
                ),
            ));
            files.push((
                "src/main.rs".into(),
                format!(
                    "fn main() {{\n    let greeting = std::env::var(\"GREETING\").unwrap_or_else(|_| \"Hello\".into());\n    \
                     let args: Vec<String> = std::env::args().skip(1).collect();\n    \
                     let whom = if args.is_empty() {{ \"world\".to_string() }} else {{ args.join(\" \") }};\n    \
                     println!(\"{{greeting}}, {{whom}}, from {name} in an isle\");\n}}\n"
                ),
            ));
            files.push((".gitignore".into(), "/target\n".into()));
        }
        Lang::C => {
            files.push((
                "main.c".into(),
                format!(
                    "#include <stdio.h>\n#include <stdlib.h>\n\nint main(int argc, char **argv)\n{{\n\
                     \tconst char *greeting = getenv(\"GREETING\");\n\
                     \tprintf(\"%s, \", greeting ? greeting : \"Hello\");\n\
                     \tif (argc < 2)\n\t\tprintf(\"world\");\n\
                     \tfor (int i = 1; i < argc; i++)\n\t\tprintf(\"%s%s\", i > 1 ? \" \" : \"\", argv[i]);\n\
                     \tprintf(\", from {name} in an isle\\n\");\n\treturn 0;\n}}\n"
                ),
            ));
            files.push((
                "Makefile".into(),
                format!(
                    "# atoll build runs `make CC=musl-gcc`: a static program.\nCFLAGS ?= -O2 -Wall\n\n\
                     {name}: main.c\n\t$(CC) $(CFLAGS) -static -o $@ $<\n\nclean:\n\trm -f {name}\n"
                ),
            ));
            files.push((".gitignore".into(), format!("/{name}\n")));
        }
    }
    files
}

/// `atoll init`: a project that builds and runs as it is.
pub fn init(args: InitArgs) -> Result<i32, CliError> {
    let dir = args.path.unwrap_or_else(|| PathBuf::from(&args.name));
    let files = files(&args.name, args.lang);
    // The manifest's own checks apply to the name.
    if let Err(message) = manifest::parse(&files[0].1) {
        return Err(CliError::usage(format!("init {}: {message}", args.name)));
    }
    if dir.exists() && std::fs::read_dir(&dir).map_or(true, |mut entries| entries.next().is_some())
    {
        return Err(CliError::usage(format!(
            "init: {} exists and isn't empty; pick another name or --path",
            dir.display()
        )));
    }
    for (name, contents) in &files {
        let path = dir.join(name);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, contents));
        written.map_err(|error| CliError::failed(format!("{}: {error}", path.display())))?;
    }
    println!(
        "created {} ({}); next: cd {} && atoll build && atoll run .",
        dir.display(),
        match args.lang {
            Lang::Rust => "Rust",
            Lang::C => "C",
        },
        dir.display()
    );
    Ok(0)
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  atoll build\n  atoll build ~/src/hello")]
pub struct BuildArgs {
    /// The project directory (default: the current one)
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Print nothing but errors (and what the build tool prints)
    #[arg(short, long)]
    quiet: bool,
}

/// The command that builds `manifest`'s program in `dir`.
fn build_command(manifest: &Manifest, dir: &Path) -> Command {
    if let Some(custom) = &manifest.build.command {
        let mut command = Command::new("sh");
        command.arg("-c").arg(custom);
        return command;
    }
    match manifest.build.lang {
        Some(Lang::Rust) => {
            let mut command = Command::new("cargo");
            command
                .args([
                    "build",
                    "--release",
                    "--target",
                    RUST_TARGET,
                    "--target-dir",
                ])
                .arg(dir.join("target"))
                // A cargo calling atoll must not steer this build.
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("CARGO_BUILD_TARGET")
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS");
            command
        }
        _ if dir.join("Makefile").is_file() => {
            let mut command = Command::new("make");
            command.arg("CC=musl-gcc");
            command
        }
        _ => {
            let mut command = Command::new("musl-gcc");
            command
                .args(["-static", "-O2", "-o"])
                .arg(&manifest.app.name)
                .arg("main.c");
            command
        }
    }
}

/// `atoll build`: compiles the program statically and checks an isle can
/// run it.
pub fn build(args: BuildArgs) -> Result<i32, CliError> {
    let dir = &args.dir;
    let manifest = manifest::load(dir)?;
    let mut command = build_command(&manifest, dir);
    let shown = format!("{command:?}");
    match command.current_dir(dir).status() {
        Ok(status) if status.success() => {}
        Ok(status) => {
            return Err(CliError::with_status(
                status.code().unwrap_or(crate::error::STATUS_ATOLL_FAILED),
                format!("the build failed ({shown}); see its output above"),
            ))
        }
        Err(error) => {
            return Err(CliError::failed(format!(
                "cannot run the build ({shown}): {error}; install the toolchain (scripts/install-deps.sh)"
            )))
        }
    }
    let program = manifest.program(dir);
    let bytes = std::fs::read(&program).map_err(|error| {
        CliError::failed(format!(
            "the build made no {}: {error}; set [run] program in {}",
            program.display(),
            manifest::FILE_NAME
        ))
    })?;
    let linking = match atoll_vmm::image::loader::parse_program(&bytes) {
        Ok(parsed) if parsed.interpreter.is_some() => "dynamic",
        Ok(_) => "static",
        Err(error) => {
            return Err(CliError::not_executable(format!(
                "{}: {error}",
                program.display()
            )))
        }
    };
    if !args.quiet {
        println!(
            "built {} {}: {} ({} KiB, {linking} x86_64)",
            manifest.app.name,
            manifest.app.version,
            program.display(),
            bytes.len().div_ceil(1024)
        );
    }
    // And its image in the local store, named NAME:VERSION.
    let reference = format!("{}:{}", manifest.app.name, manifest.app.version);
    if let Some(base) = &manifest.build.base {
        let descriptor = build_on_base(&manifest, dir, base, &bytes)?;
        let store = Store::open()?;
        store.tag(&reference, &descriptor)?;
        if !args.quiet {
            println!(
                "image {reference} ({}) on {base}: the program is {}",
                &descriptor.digest[..19],
                crate::image::oci::program_path(&manifest.app.name)
            );
        }
        return Ok(0);
    }
    let owned = project_parts(&manifest, dir, bytes)?;
    let store = Store::open()?;
    let descriptor = store::store_image(&store, &owned.parts())?;
    store.tag(&reference, &descriptor)?;
    if !args.quiet {
        println!(
            "image {reference} ({}, {} KiB with the kernel)",
            &descriptor.digest[..19],
            owned.size().div_ceil(1024)
        );
    }
    Ok(0)
}

/// The project's program as a layer on container image `base` (pulled
/// first when it names a registry and isn't here).
fn build_on_base(
    manifest: &Manifest,
    dir: &Path,
    base: &str,
    program: &[u8],
) -> Result<store::Descriptor, CliError> {
    let store = Store::open()?;
    let found = match store.resolve(base)? {
        Some((_, descriptor)) => descriptor,
        None if crate::image::registry::looks_remote(base) => {
            crate::image::registry::pull_image(base, true)?;
            store
                .resolve(base)?
                .ok_or_else(|| CliError::failed(format!("[build] base {base}: pulled, but not in the store")))?
                .1
        }
        None => {
            return Err(CliError::usage(format!(
                "[build] base {base}: no such image here (see `atoll images`); give REGISTRY/NAME:TAG to pull it"
            )))
        }
    };
    let image = store.manifest(&found)?;
    if !crate::image::oci::is_container_config(&image.config.media_type) {
        return Err(CliError::usage(format!(
            "[build] base {base}: not a container image (its config is {}): give one docker runs",
            image.config.media_type
        )));
    }
    let files = project_files(manifest, dir)?;
    crate::image::oci::compose_on_base(
        &store,
        &image,
        &manifest.app.name,
        program,
        &files,
        &manifest.run,
    )
    .map_err(|error| CliError::failed(format!("[build] base {base}: {error}")))
}

/// An image's parts, owned: what `store::Parts` borrows.
pub struct OwnedParts {
    pub config: store::Config,
    /// None: the built-in kernel.
    pub kernel: Option<Vec<u8>>,
    pub program: Vec<u8>,
    pub files: Vec<(String, Vec<u8>)>,
}

impl OwnedParts {
    pub fn parts(&self) -> store::Parts<'_> {
        store::Parts {
            config: &self.config,
            kernel: self.kernel.as_deref().unwrap_or(crate::KERNEL_IMAGE),
            program: &self.program,
            files: &self.files,
        }
    }

    pub fn size(&self) -> usize {
        self.parts().kernel.len()
            + self.program.len()
            + self.files.iter().map(|(_, tar)| tar.len()).sum::<usize>()
    }
}

/// Why a built project's image parts can't be had.
#[derive(Debug, thiserror::Error)]
pub enum PartsError {
    #[error("[build] files: {} is not a directory of the project", .0.display())]
    FilesNotADirectory(PathBuf),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Kernel(#[from] KernelError),
}

/// The `[build] files` directories as (where the isle sees it, project
/// directory), each checked to be a directory.
fn project_files(manifest: &Manifest, dir: &Path) -> Result<Vec<(String, PathBuf)>, PartsError> {
    manifest
        .files(dir)
        .into_iter()
        .map(|(host, guest)| match host.is_dir() {
            true => Ok((guest, host)),
            false => Err(PartsError::FilesNotADirectory(host)),
        })
        .collect()
}

/// A built project as image parts: its settings, program and files layers.
pub fn project_parts(
    manifest: &Manifest,
    dir: &Path,
    program: Vec<u8>,
) -> Result<OwnedParts, PartsError> {
    let mut files = Vec::new();
    for (guest, host) in project_files(manifest, dir)? {
        files.push((guest, crate::image::rootfs::pack_dir(&host)?));
    }
    let kernel = match &manifest.kernel.image {
        Some(reference) => Some(crate::image::images::pinned_kernel(reference)?),
        None => None,
    };
    Ok(OwnedParts {
        kernel,
        config: store::Config {
            name: manifest.app.name.clone(),
            version: manifest.app.version.clone(),
            run: manifest.run.clone(),
        },
        program,
        files,
    })
}
