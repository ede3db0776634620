//! `atoll push`, `pull`, `login` and `search`: isle images in any OCI
//! distribution registry, through the oci-client crate.
//!
//! Loopback registries (localhost, 127.0.0.1, [::1]) are spoken to over
//! plain HTTP, as docker does; others over HTTPS. Credentials from `atoll
//! login` live in `$ATOLL_HOME/auth.json`, readable by the owner only.
//! Every network step is bounded by a timeout.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use oci_client::client::{ClientConfig, ClientProtocol, Config as OciConfig, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::run::fail;
use crate::store::{self, Store};

/// No network step of push, pull, login or search waits longer.
const TIMEOUT: Duration = Duration::from_secs(20);

fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .filter(|(host, port)| !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(registry, |(host, _)| host);
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

fn scheme(registry: &str) -> &'static str {
    if is_loopback(registry) {
        "http"
    } else {
        "https"
    }
}

fn client(registry: &str) -> Client {
    Client::new(ClientConfig {
        protocol: if is_loopback(registry) {
            ClientProtocol::HttpsExcept(vec![registry.to_string()])
        } else {
            ClientProtocol::Https
        },
        connect_timeout: Some(Duration::from_secs(5)),
        read_timeout: Some(TIMEOUT),
        ..ClientConfig::default()
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the network runtime: {error}"))
}

/// Runs a network step with the timeout, naming the registry on failure.
fn network<T>(
    registry: &str,
    step: impl std::future::Future<Output = Result<T, oci_client::errors::OciDistributionError>>,
) -> Result<T, String> {
    let outcome = runtime()?.block_on(async { tokio::time::timeout(TIMEOUT * 3, step).await });
    match outcome {
        Err(_) => Err(format!(
            "registry {registry} didn't answer within {} s: check the address and that it runs",
            (TIMEOUT * 3).as_secs()
        )),
        Ok(Err(error)) => Err(explain(registry, &error)),
        Ok(Ok(value)) => Ok(value),
    }
}

/// A registry error as a user can act on it.
fn explain(registry: &str, error: &oci_client::errors::OciDistributionError) -> String {
    use oci_client::errors::OciDistributionError as E;
    // The whole chain of causes: "connection refused" is a few levels down.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    let lower = text.to_lowercase();
    match error {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => {
            format!("registry {registry} refused the credentials: run `atoll login {registry}`")
        }
        E::DigestError(_) => format!(
            "registry {registry} sent a blob that doesn't match its digest ({text}): refused"
        ),
        E::ImageManifestNotFoundError(_) => {
            format!("registry {registry} has no such image or tag ({text})")
        }
        E::RequestError(_)
            if lower.contains("connect")
                || lower.contains("dns")
                || lower.contains("timed out") =>
        {
            format!(
                "registry {registry} is unreachable ({text}): check the address and that it runs"
            )
        }
        E::RegistryError { .. } | E::ServerError { .. }
            if lower.contains("unauthorized") || lower.contains("authentication required") =>
        {
            format!("registry {registry} refused the credentials: run `atoll login {registry}`")
        }
        E::RegistryError { .. } | E::ServerError { .. }
            if lower.contains("unknown")
                || lower.contains("not known")
                || lower.contains("not found") =>
        {
            format!("registry {registry} has no such image or tag ({text})")
        }
        _ => format!("registry {registry}: {text}"),
    }
}

fn auth_path() -> PathBuf {
    Store::root_dir().join("auth.json")
}

fn credentials() -> BTreeMap<String, (String, String)> {
    std::fs::read(auth_path())
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn auth_for(registry: &str) -> RegistryAuth {
    match credentials().remove(registry) {
        Some((user, password)) => RegistryAuth::Basic(user, password),
        None => RegistryAuth::Anonymous,
    }
}

fn parse_reference(text: &str) -> Result<Reference, String> {
    let reference: Reference = text.parse().map_err(|error| {
        format!("{text}: not an image reference ({error}); use REGISTRY/NAME:TAG")
    })?;
    if !text.contains('/') {
        return Err(format!(
            "{text}: name the registry too, as REGISTRY/NAME:TAG"
        ));
    }
    Ok(reference)
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  atoll tag hello:0.1.0 localhost:5000/me/hello:0.1\n  atoll push localhost:5000/me/hello:0.1\n  atoll push hello:0.1.0 localhost:5000/me/hello:0.1"
)]
pub struct PushArgs {
    /// The local image
    source: String,
    /// Where to push it (default: the same name), as REGISTRY/NAME:TAG
    target: Option<String>,
}

/// `atoll push`: a local image to a registry (blobs already there are
/// skipped by the registry, so running it again is cheap).
pub fn push(args: PushArgs) -> i32 {
    match push_image(&args.source, args.target.as_deref().unwrap_or(&args.source)) {
        Ok(digest) => {
            println!(
                "pushed {} ({digest})",
                args.target.as_deref().unwrap_or(&args.source)
            );
            0
        }
        Err(message) => fail(125, message),
    }
}

fn push_image(source: &str, target: &str) -> Result<String, String> {
    let store = Store::open()?;
    let (_, descriptor) = store
        .resolve(source)?
        .ok_or_else(|| format!("no image {source} here (see `atoll images`)"))?;
    let reference = parse_reference(target)?;
    let manifest = store.manifest(&descriptor)?;
    let config = OciConfig::new(
        store.get(&manifest.config)?,
        store::CONFIG_TYPE.into(),
        None,
    );
    let mut layers = Vec::new();
    for layer in &manifest.layers {
        let annotations: BTreeMap<String, String> = layer.annotations.clone();
        layers.push(ImageLayer::new(
            store.get(layer)?,
            layer.media_type.clone(),
            (!annotations.is_empty()).then_some(annotations),
        ));
    }
    let oci_manifest = OciImageManifest::build(&layers, &config, None);
    let registry = reference.resolve_registry().to_string();
    let client = client(&registry);
    let auth = auth_for(&registry);
    let pushed = network(
        &registry,
        client.push(&reference, &layers, config, &auth, Some(oci_manifest)),
    )?;
    Ok(pushed.manifest_url)
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  atoll pull localhost:5000/me/hello:0.1")]
pub struct PullArgs {
    /// The image, as REGISTRY/NAME:TAG
    image: String,
}

pub fn pull(args: PullArgs) -> i32 {
    match pull_image(&args.image) {
        Ok(digest) => {
            println!("pulled {} ({})", args.image, &digest[..19]);
            0
        }
        Err(message) => fail(125, message),
    }
}

/// Pulls an image into the local store under its full name; returns the
/// local manifest digest. Every blob is checked against its digest.
pub fn pull_image(text: &str) -> Result<String, String> {
    let reference = parse_reference(text)?;
    let registry = reference.resolve_registry().to_string();
    let client = client(&registry);
    let auth = auth_for(&registry);
    let image = network(
        &registry,
        client.pull(
            &reference,
            &auth,
            vec![store::KERNEL_TYPE, store::PROGRAM_TYPE],
        ),
    )?;
    let manifest = image
        .manifest
        .ok_or_else(|| format!("{text}: the registry sent no manifest"))?;
    if manifest.config.media_type != store::CONFIG_TYPE {
        return Err(format!(
            "{text} isn't an atoll image (its config is {})",
            manifest.config.media_type
        ));
    }
    let digest_ok = |data: &[u8], digest: &str| store::sha256(data) == digest;
    if !digest_ok(&image.config.data, &manifest.config.digest) {
        return Err(format!(
            "{text}: the config's digest doesn't match: refused"
        ));
    }
    let mut kernel = None;
    let mut program = None;
    // Layers arrive in any order: each must be one the manifest lists.
    for layer in &image.layers {
        let digest = store::sha256(&layer.data);
        let listed = manifest.layers.iter().any(|descriptor| {
            descriptor.digest == digest && descriptor.media_type == layer.media_type
        });
        if !listed {
            return Err(format!(
                "{text}: a {} layer doesn't match any digest of its manifest: refused",
                layer.media_type
            ));
        }
        match layer.media_type.as_str() {
            store::KERNEL_TYPE => kernel = Some(&layer.data),
            store::PROGRAM_TYPE => program = Some(&layer.data),
            _ => {}
        }
    }
    let (Some(kernel), Some(program)) = (kernel, program) else {
        return Err(format!("{text} lacks its kernel or program layer"));
    };
    let config: store::Config = serde_json::from_slice(&image.config.data)
        .map_err(|error| format!("{text}: invalid config: {error}"))?;
    let store = Store::open()?;
    let descriptor = store::store_image(&store, &config, kernel, program)?;
    store.tag(text, &descriptor)?;
    Ok(descriptor.digest)
}

/// Whether `text` names an image in a registry (REGISTRY/NAME[:TAG]).
pub fn looks_remote(text: &str) -> bool {
    text.split_once('/').is_some_and(|(registry, rest)| {
        !rest.is_empty()
            && (registry.contains('.') || registry.contains(':') || registry == "localhost")
    })
}

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  echo secret | atoll login localhost:5000 -u me --password-stdin"
)]
pub struct LoginArgs {
    /// The registry, as HOST[:PORT]
    registry: String,
    /// The user name
    #[arg(short, long)]
    username: String,
    /// Read the password from stdin (else from ATOLL_PASSWORD)
    #[arg(long)]
    password_stdin: bool,
}

/// `atoll login`: checks the credentials against the registry, then keeps
/// them (mode 0600).
pub fn login(args: LoginArgs) -> i32 {
    let password = if args.password_stdin {
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() {
            return fail(2, "cannot read the password from stdin");
        }
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match std::env::var("ATOLL_PASSWORD") {
            Ok(password) => password,
            Err(_) => {
                return fail(
                    2,
                    "give the password on stdin with --password-stdin, or in ATOLL_PASSWORD",
                )
            }
        }
    };
    let registry = &args.registry;
    // Listing a repository's tags needs the credentials to be right: a
    // missing repository is fine, a refusal is not.
    let probe = Reference::with_tag(
        registry.clone(),
        "atoll/login-check".into(),
        "latest".into(),
    );
    let auth = RegistryAuth::Basic(args.username.clone(), password.clone());
    match network(
        registry,
        client(registry).list_tags(&probe, &auth, Some(1), None),
    ) {
        Ok(_) => {}
        Err(message) if message.contains("no such image") => {}
        Err(message) => return fail(125, message),
    }
    let mut all = credentials();
    all.insert(registry.clone(), (args.username, password));
    let path = auth_path();
    let saved = std::fs::create_dir_all(Store::root_dir()).and_then(|()| {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(&serde_json::to_vec_pretty(&all).map_err(std::io::Error::other)?)
    });
    match saved {
        Ok(()) => {
            println!("logged in to {registry}");
            0
        }
        Err(error) => fail(125, format!("{}: {error}", path.display())),
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Example:\n  atoll search localhost:5000 hello")]
pub struct SearchArgs {
    /// The registry, as HOST[:PORT]
    registry: String,
    /// Only repositories whose name contains this
    term: Option<String>,
    /// Output format: table (default) or json
    #[arg(short = 'o', long = "output", value_name = "FORMAT", default_value = "table", value_parser = ["table", "json"])]
    output: String,
}

/// `atoll search`: the registry's repositories (its catalog) and their tags.
pub fn search(args: SearchArgs) -> i32 {
    match search_registry(&args.registry, args.term.as_deref()) {
        Ok(found) => {
            if args.output == "json" {
                println!("{}", serde_json::to_string(&found).unwrap_or_default());
            } else {
                println!("REPOSITORY  TAGS");
                for (repository, tags) in &found {
                    println!("{repository}  {}", tags.join(", "));
                }
            }
            0
        }
        Err(message) => fail(125, message),
    }
}

fn search_registry(
    registry: &str,
    term: Option<&str>,
) -> Result<BTreeMap<String, Vec<String>>, String> {
    let auth = auth_for(registry);
    // The catalog is one GET the client crate doesn't offer; the rest is
    // oci-client's.
    let url = format!("{}://{registry}/v2/_catalog", scheme(registry));
    let runtime = runtime()?;
    let catalog: HashMap<String, Vec<String>> = runtime
        .block_on(async {
            let http = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(TIMEOUT)
                .build()?;
            let mut request = http.get(&url);
            if let RegistryAuth::Basic(user, password) = &auth {
                request = request.basic_auth(user, Some(password));
            }
            request.send().await?.error_for_status()?.json().await
        })
        .map_err(|error: reqwest::Error| {
            if error.status().is_some_and(|status| status.as_u16() == 401) {
                format!("registry {registry} refused the credentials: run `atoll login {registry}`")
            } else {
                format!("registry {registry} is unreachable or has no catalog ({error})")
            }
        })?;
    let mut found = BTreeMap::new();
    let client = client(registry);
    for repository in catalog.get("repositories").cloned().unwrap_or_default() {
        if term.is_some_and(|term| !repository.contains(term)) {
            continue;
        }
        let reference =
            Reference::with_tag(registry.to_string(), repository.clone(), "latest".into());
        let tags = network(registry, client.list_tags(&reference, &auth, None, None))?;
        found.insert(repository, tags.tags);
    }
    Ok(found)
}
