//! `atoll images`, `rmi`, `tag`, `inspect`, `kernels` and `prune`: the
//! local image store (see `store`).

use clap::Args;

use crate::run::fail;
use crate::store::{self, Store};

fn open() -> Result<Store, i32> {
    Store::open().map_err(|message| fail(125, message))
}

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
pub fn images(args: ImagesArgs) -> i32 {
    let store = match open() {
        Ok(store) => store,
        Err(status) => return status,
    };
    let images = match store.images() {
        Ok(images) => images,
        Err(message) => return fail(125, message),
    };
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
    0
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
pub fn rmi(args: RmiArgs) -> i32 {
    let store = match open() {
        Ok(store) => store,
        Err(status) => return status,
    };
    for reference in &args.images {
        let resolved = match store.resolve(reference) {
            Ok(resolved) => resolved,
            Err(message) => return fail(125, message),
        };
        let Some((name, _)) = resolved else {
            return fail(2, format!("no image {reference} (see `atoll images`)"));
        };
        if let Err(message) = store.untag(&name) {
            return fail(125, message);
        }
        if !args.quiet {
            println!("untagged {name}");
        }
    }
    0
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  atoll tag hello:0.1.0 localhost:5000/me/hello:0.1")]
pub struct TagArgs {
    /// The image, as NAME[:TAG]
    source: String,
    /// Its new name, NAME:TAG
    target: String,
}

pub fn tag(args: TagArgs) -> i32 {
    let store = match open() {
        Ok(store) => store,
        Err(status) => return status,
    };
    let Ok(Some((_, descriptor))) = store.resolve(&args.source) else {
        return fail(2, format!("no image {} (see `atoll images`)", args.source));
    };
    let valid = store::split_tag(&args.target).is_some();
    if !valid {
        return fail(2, format!("{}: name the image NAME:TAG", args.target));
    }
    match store.tag(&args.target, &descriptor) {
        Ok(()) => 0,
        Err(message) => fail(125, message),
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  atoll inspect hello:0.1.0")]
pub struct InspectArgs {
    /// The image, as NAME[:TAG]
    image: String,
}

/// `atoll inspect`: an image's manifest and config, as JSON.
pub fn inspect(args: InspectArgs) -> i32 {
    let store = match open() {
        Ok(store) => store,
        Err(status) => return status,
    };
    let Ok(Some((name, descriptor))) = store.resolve(&args.image) else {
        return fail(2, format!("no image {} (see `atoll images`)", args.image));
    };
    let shown = store.manifest(&descriptor).and_then(|manifest| {
        let config = store.config(&manifest)?;
        Ok(serde_json::json!({
            "name": name, "digest": descriptor.digest,
            "manifest": manifest, "config": config,
        }))
    });
    match shown {
        Ok(value) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
            0
        }
        Err(message) => fail(125, message),
    }
}

/// The kernel a `[kernel] image` names: a kernel artifact in the store,
/// pulled first when it names a registry; its version must be one this
/// atoll speaks the boot protocol of.
pub fn pinned_kernel(reference: &str) -> Result<Vec<u8>, String> {
    let store = Store::open()?;
    let find = |store: &Store| -> Result<Option<Vec<u8>>, String> {
        let Some((name, _)) = store.resolve(reference)? else {
            return Ok(None);
        };
        let (_, config, layer) = store
            .kernels()?
            .into_iter()
            .find(|(kernel, _, _)| *kernel == name)
            .ok_or_else(|| format!("[kernel] image = {reference:?} is an image, not a kernel"))?;
        if config.version != env!("CARGO_PKG_VERSION") {
            return Err(format!(
                "[kernel] image = {reference:?} is kernel {}, but this atoll boots kernel {} only",
                config.version,
                env!("CARGO_PKG_VERSION")
            ));
        }
        store.get(&layer).map(Some)
    };
    if let Some(kernel) = find(&store)? {
        return Ok(kernel);
    }
    if crate::registry::looks_remote(reference) {
        crate::registry::pull_image(reference, true)?;
        if let Some(kernel) = find(&store)? {
            return Ok(kernel);
        }
    }
    Err(format!(
        "[kernel] image = {reference:?}: no such kernel here (see `atoll kernels`)"
    ))
}

/// `atoll kernels`: the built-in kernel, kernels pulled on their own, and
/// those images carry.
pub fn kernels(args: KernelsArgs) -> i32 {
    let store = match open() {
        Ok(store) => store,
        Err(status) => return status,
    };
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
        return 0;
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
    0
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
pub fn prune(quiet: bool) -> i32 {
    let store = match open() {
        Ok(store) => store,
        Err(status) => return status,
    };
    match store.prune() {
        Ok((count, bytes)) => {
            if quiet {
                return 0;
            }
            println!("removed {count} blob(s), {} KiB", bytes.div_ceil(1024));
            0
        }
        Err(message) => fail(125, message),
    }
}
