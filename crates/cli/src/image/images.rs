//! `atoll images`, `rmi`, `tag`, `inspect`, `kernels` and `prune`: the
//! local image store (see `store`).

use clap::Args;

use crate::error::CliError;
use crate::image::registry::RegistryError;
use crate::image::store::{self, Store, StoreError};

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  atoll images\n  atoll images -q\n  atoll images -o json")]
pub struct ImagesArgs {
    /// Output format: table (default) or json
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "table", value_parser = ["table", "json"])]
    output: String,
    /// Only the names
    #[arg(short, long)]
    quiet: bool,
}

/// `atoll images`: what the local store holds.
pub fn images(args: ImagesArgs) -> Result<i32, CliError> {
    let store = Store::open()?;
    let images = store.images()?;
    let mut rows = Vec::new();
    for (reference, descriptor) in &images {
        let size = store
            .manifest(descriptor)
            .map(|manifest| {
                manifest.config.size + manifest.layers.iter().map(|layer| layer.size).sum::<u64>()
            })
            .unwrap_or(0);
        rows.push((reference.clone(), descriptor.digest.clone(), size));
    }
    if args.quiet {
        for (reference, _, _) in &rows {
            println!("{reference}");
        }
    } else if args.output == "json" {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(reference, digest, size)| {
                serde_json::json!({ "name": reference, "digest": digest, "size": size })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
    } else {
        let width = rows.iter().map(|row| row.0.len()).max().unwrap_or(0).max(5);
        println!("{:<width$}  {:<19}  SIZE", "IMAGE", "DIGEST");
        for (reference, digest, size) in &rows {
            println!(
                "{reference:<width$}  {:<19}  {} KiB",
                &digest[..19.min(digest.len())],
                size.div_ceil(1024)
            );
        }
    }
    Ok(0)
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  atoll rmi hello:0.1.0 && atoll prune")]
pub struct RmiArgs {
    /// Images to forget, as NAME:TAG
    #[arg(required = true)]
    images: Vec<String>,
    /// Print nothing but errors
    #[arg(short, long)]
    quiet: bool,
}

/// `atoll rmi`: forgets names; `atoll prune` frees what nothing names.
pub fn rmi(args: RmiArgs) -> Result<i32, CliError> {
    let store = Store::open()?;
    for reference in &args.images {
        let resolved = store.resolve(reference)?;
        let Some((name, _)) = resolved else {
            return Err(no_such_image(reference));
        };
        store.untag(&name)?;
        if !args.quiet {
            println!("untagged {name}");
        }
    }
    Ok(0)
}

fn no_such_image(reference: &str) -> CliError {
    CliError::usage(format!("no image {reference} (see `atoll images`)"))
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  atoll tag hello:0.1.0 localhost:5000/me/hello:0.1")]
pub struct TagArgs {
    /// The image, as NAME[:TAG]
    source: String,
    /// Its new name, NAME:TAG
    target: String,
}

pub fn tag(args: TagArgs) -> Result<i32, CliError> {
    let store = Store::open()?;
    let Ok(Some((_, descriptor))) = store.resolve(&args.source) else {
        return Err(no_such_image(&args.source));
    };
    let valid = store::split_tag(&args.target).is_some();
    if !valid {
        return Err(CliError::usage(format!(
            "{}: name the image NAME:TAG",
            args.target
        )));
    }
    store.tag(&args.target, &descriptor)?;
    Ok(0)
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  atoll inspect hello:0.1.0")]
pub struct InspectArgs {
    /// The image, as NAME[:TAG]
    image: String,
}

/// `atoll inspect`: an image's manifest and config, as JSON.
pub fn inspect(args: InspectArgs) -> Result<i32, CliError> {
    let store = Store::open()?;
    let Ok(Some((name, descriptor))) = store.resolve(&args.image) else {
        return Err(no_such_image(&args.image));
    };
    let manifest = store.manifest(&descriptor)?;
    // As stored: an atoll image's run settings or a container image's
    // config alike.
    let config: serde_json::Value =
        serde_json::from_slice(&store.get(&manifest.config)?).map_err(|source| {
            StoreError::InvalidConfig {
                digest: manifest.config.digest.clone(),
                source,
            }
        })?;
    let value = serde_json::json!({
        "name": name, "digest": descriptor.digest,
        "manifest": manifest, "config": config,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    Ok(0)
}

/// Why the kernel a `[kernel] image` names can't be had.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("[kernel] image = {0:?} is an image, not a kernel")]
    NotAKernel(String),
    #[error("[kernel] image = {reference:?} is kernel {version}, but this atoll boots kernel {ours} only", ours = env!("CARGO_PKG_VERSION"))]
    Version { reference: String, version: String },
    #[error("[kernel] image = {0:?}: no such kernel here (see `atoll kernels`)")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The kernel a `[kernel] image` names: a kernel artifact in the store,
/// pulled first when it names a registry; its version must be one this
/// atoll speaks the boot protocol of.
pub fn pinned_kernel(reference: &str) -> Result<Vec<u8>, KernelError> {
    let store = Store::open()?;
    let find = |store: &Store| -> Result<Option<Vec<u8>>, KernelError> {
        let Some((name, _)) = store.resolve(reference)? else {
            return Ok(None);
        };
        let (_, config, layer) = store
            .kernels()?
            .into_iter()
            .find(|(kernel, _, _)| *kernel == name)
            .ok_or_else(|| KernelError::NotAKernel(reference.to_string()))?;
        if config.version != env!("CARGO_PKG_VERSION") {
            return Err(KernelError::Version {
                reference: reference.to_string(),
                version: config.version,
            });
        }
        Ok(Some(store.get(&layer)?))
    };
    if let Some(kernel) = find(&store)? {
        return Ok(kernel);
    }
    if crate::image::registry::looks_remote(reference) {
        crate::image::registry::pull_image(reference, true)?;
        if let Some(kernel) = find(&store)? {
            return Ok(kernel);
        }
    }
    Err(KernelError::NotFound(reference.to_string()))
}

/// `atoll kernels`: the built-in kernel, kernels pulled on their own, and
/// those images carry.
pub fn kernels(args: KernelsArgs) -> Result<i32, CliError> {
    let store = Store::open()?;
    // By digest: version, size, what uses it.
    let mut seen = std::collections::BTreeMap::<String, (String, u64, Vec<String>)>::new();
    seen.insert(
        crate::KERNEL_DIGEST.to_string(),
        (
            env!("CARGO_PKG_VERSION").into(),
            crate::KERNEL_IMAGE.len() as u64,
            vec!["built in".into()],
        ),
    );
    for (name, config, layer) in store.kernels().unwrap_or_default() {
        seen.entry(layer.digest.clone())
            .or_insert((config.version, layer.size, Vec::new()))
            .2
            .push(format!("{name} (a kernel)"));
    }
    for (reference, descriptor) in store.images().unwrap_or_default() {
        let Ok(manifest) = store.manifest(&descriptor) else {
            continue;
        };
        if let Ok(store::Layers { kernel, .. }) = store::layers(&manifest) {
            let version = kernel
                .annotations
                .get(store::KERNEL_VERSION)
                .cloned()
                .unwrap_or_default();
            seen.entry(kernel.digest.clone())
                .or_insert((version, kernel.size, Vec::new()))
                .2
                .push(reference);
        }
    }
    if args.output == "json" {
        let list: Vec<serde_json::Value> = seen
            .iter()
            .map(|(digest, (version, size, users))| {
                serde_json::json!({ "version": version, "digest": digest, "size": size, "used_by": users })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(0);
    }
    println!("{:<8}  {:<19}  {:>7}  USED BY", "VERSION", "DIGEST", "SIZE");
    for (digest, (version, size, users)) in seen {
        println!(
            "{version:<8}  {:<19}  {:>4} KiB  {}",
            &digest[..19],
            size.div_ceil(1024),
            users.join(", ")
        );
    }
    Ok(0)
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  atoll kernels\n  atoll kernels -o json\n  atoll push --kernel localhost:5000/atoll/kernel:0.1.0"
)]
pub struct KernelsArgs {
    /// Output format: table (default) or json
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// `atoll prune`: deletes blobs no image names.
pub fn prune(quiet: bool) -> Result<i32, CliError> {
    let (count, bytes) = Store::open()?.prune()?;
    if !quiet {
        println!("removed {count} blob(s), {} KiB", bytes.div_ceil(1024));
    }
    Ok(0)
}
