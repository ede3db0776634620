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
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::error::{CliError, PathError};
use crate::image::oci;
use crate::image::store::{self, Store, StoreError};

/// No network step of push, pull, login or search waits longer.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A network step that failed, as a user can act on it. `detail` is the
/// client's error with its chain of causes.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("cannot start the network runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "registry {registry} didn't answer within {seconds} s: check the address and that it runs"
    )]
    Timeout { registry: String, seconds: u64 },
    #[error("registry {0} refused the credentials: run `atoll login {0}`")]
    Refused(String),
    #[error("registry {registry} sent a blob that doesn't match its digest ({detail}): refused")]
    Digest { registry: String, detail: String },
    #[error("registry {registry} has no such image or tag ({detail})")]
    NoSuchImage { registry: String, detail: String },
    #[error("registry {registry} is unreachable ({detail}): check the address and that it runs")]
    Unreachable { registry: String, detail: String },
    #[error("registry {registry} is unreachable or has no catalog ({source})")]
    NoCatalog {
        registry: String,
        source: reqwest::Error,
    },
    #[error("registry {registry}: {detail}")]
    Other { registry: String, detail: String },
}

/// Why a blob's download didn't arrive whole.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("the download's writer failed")]
    WriterFailed,
    #[error(transparent)]
    Io(#[from] PathError),
    #[error("blob {0} doesn't match its digest: refused (pull again)")]
    Mismatch(String),
}

/// Why a push, pull or search failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{text}: not an image reference ({source}); use REGISTRY/NAME:TAG")]
    BadReference {
        text: String,
        source: oci_client::ParseError,
    },
    #[error("{0}: name the registry too, as REGISTRY/NAME:TAG")]
    NoRegistry(String),
    #[error("no image {0} here (see `atoll images`)")]
    NoLocalImage(String),
    /// The registry's manifest of IMAGE doesn't parse.
    #[error("{image}: {source}")]
    InvalidManifest { image: String, source: StoreError },
    #[error(
        "{image} is neither an atoll image nor a container image (its config is {config_type})"
    )]
    NotAnImage { image: String, config_type: String },
    #[error("{image}: {source}")]
    Container {
        image: String,
        source: crate::image::oci::OciError,
    },
    #[error("{image}: {source}")]
    Pull {
        image: String,
        source: DownloadError,
    },
}

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
        // One PUT per blob, as `curl -T` would: chunked uploads cost a
        // round trip per 4 MiB.
        use_monolithic_push: true,
        ..ClientConfig::default()
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, NetworkError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NetworkError::Runtime)
}

/// Runs a network step with the timeout, naming the registry on failure.
fn network<T>(
    registry: &str,
    step: impl std::future::Future<Output = Result<T, oci_client::errors::OciDistributionError>>,
) -> Result<T, NetworkError> {
    network_within(registry, TIMEOUT * 3, step)
}

/// A transfer: as long as it keeps moving (every read is bounded by
/// TIMEOUT), up to a day.
fn transfer<T>(
    registry: &str,
    step: impl std::future::Future<Output = Result<T, oci_client::errors::OciDistributionError>>,
) -> Result<T, NetworkError> {
    network_within(registry, Duration::from_secs(24 * 3600), step)
}

fn network_within<T>(
    registry: &str,
    limit: Duration,
    step: impl std::future::Future<Output = Result<T, oci_client::errors::OciDistributionError>>,
) -> Result<T, NetworkError> {
    let outcome = runtime()?.block_on(async { tokio::time::timeout(limit, step).await });
    match outcome {
        Err(_) => Err(NetworkError::Timeout {
            registry: registry.to_string(),
            seconds: limit.as_secs(),
        }),
        Ok(Err(error)) => Err(explain(registry, &error)),
        Ok(Ok(value)) => Ok(value),
    }
}

/// A registry error as a user can act on it.
fn explain(registry: &str, error: &oci_client::errors::OciDistributionError) -> NetworkError {
    use oci_client::errors::OciDistributionError as E;
    // The whole chain of causes: "connection refused" is a few levels down.
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    let lower = text.to_lowercase();
    let registry = registry.to_string();
    match error {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => {
            NetworkError::Refused(registry)
        }
        E::DigestError(_) => NetworkError::Digest {
            registry,
            detail: text,
        },
        E::ImageManifestNotFoundError(_) => NetworkError::NoSuchImage {
            registry,
            detail: text,
        },
        E::RequestError(_)
            if lower.contains("connect")
                || lower.contains("dns")
                || lower.contains("timed out") =>
        {
            NetworkError::Unreachable {
                registry,
                detail: text,
            }
        }
        E::RegistryError { .. } | E::ServerError { .. }
            if lower.contains("unauthorized") || lower.contains("authentication required") =>
        {
            NetworkError::Refused(registry)
        }
        E::RegistryError { .. } | E::ServerError { .. }
            if lower.contains("unknown")
                || lower.contains("not known")
                || lower.contains("not found") =>
        {
            NetworkError::NoSuchImage {
                registry,
                detail: text,
            }
        }
        _ => NetworkError::Other {
            registry,
            detail: text,
        },
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

fn parse_reference(text: &str) -> Result<Reference, RegistryError> {
    let reference: Reference = text.parse().map_err(|source| RegistryError::BadReference {
        text: text.to_string(),
        source,
    })?;
    if !text.contains('/') {
        return Err(RegistryError::NoRegistry(text.to_string()));
    }
    Ok(reference)
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  atoll tag hello:0.1.0 localhost:5000/me/hello:0.1\n  atoll push localhost:5000/me/hello:0.1\n  atoll push hello:0.1.0 localhost:5000/me/hello:0.1\n  atoll push --kernel localhost:5000/atoll/kernel:0.1.0"
)]
pub struct PushArgs {
    /// The local image (with --kernel: where to push the built-in kernel)
    source: String,
    /// Where to push it (default: the same name), as REGISTRY/NAME:TAG
    target: Option<String>,
    /// Push this atoll's built-in kernel, on its own, to SOURCE
    #[arg(long, conflicts_with = "target")]
    kernel: bool,
    /// Print nothing but errors (no progress bar)
    #[arg(short, long)]
    quiet: bool,
}

/// `atoll push`: a local image to a registry. Blobs the registry already
/// has are skipped, so running it again is cheap.
pub fn push(args: PushArgs) -> Result<i32, CliError> {
    let target = args.target.as_deref().unwrap_or(&args.source);
    let source = if args.kernel {
        store_builtin_kernel()?
    } else {
        args.source.clone()
    };
    let digest = push_image(&source, target, args.quiet)?;
    if !args.quiet {
        println!("pushed {target} ({})", &digest[..19.min(digest.len())]);
    }
    Ok(0)
}

/// The built-in kernel as a kernel artifact in the store; returns its name.
pub fn store_builtin_kernel() -> Result<String, StoreError> {
    let store = Store::open()?;
    let config = store::KernelConfig {
        version: env!("CARGO_PKG_VERSION").into(),
        features: crate::manifest::KERNEL_FEATURES
            .iter()
            .map(|f| f.to_string())
            .collect(),
    };
    let config_bytes = serde_json::to_vec(&config).map_err(StoreError::Serialize)?;
    let mut kernel = store.put(store::KERNEL_TYPE, crate::KERNEL_IMAGE)?;
    kernel
        .annotations
        .insert(store::KERNEL_VERSION.into(), config.version.clone());
    let manifest = store::Manifest {
        schema_version: 2,
        media_type: store::MANIFEST_TYPE.into(),
        config: store.put(store::KERNEL_CONFIG_TYPE, &config_bytes)?,
        layers: vec![kernel],
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(StoreError::Serialize)?;
    let descriptor = store.put(store::MANIFEST_TYPE, &bytes)?;
    let name = format!("atoll-kernel:{}", config.version);
    store.tag(&name, &descriptor)?;
    Ok(name)
}

/// A byte-counting progress bar on stderr (drawn only on a terminal).
fn progress(total: u64, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Whether the registry has a blob (HEAD); unknown counts as no.
async fn registry_has(
    registry: &str,
    reference: &Reference,
    auth: &RegistryAuth,
    digest: &str,
) -> bool {
    let url = format!(
        "{}://{registry}/v2/{}/blobs/{digest}",
        scheme(registry),
        reference.repository()
    );
    let Ok(http) = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(TIMEOUT)
        .build()
    else {
        return false;
    };
    let mut request = http.head(url);
    if let RegistryAuth::Basic(user, password) = auth {
        request = request.basic_auth(user, Some(password));
    }
    request
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

fn push_image(source: &str, target: &str, quiet: bool) -> Result<String, RegistryError> {
    let store = Store::open()?;
    let (_, descriptor) = store
        .resolve(source)?
        .ok_or_else(|| RegistryError::NoLocalImage(source.to_string()))?;
    let reference = parse_reference(target)?;
    let manifest_bytes = store.get(&descriptor)?;
    let manifest = store.manifest(&descriptor)?;
    let registry = reference.resolve_registry().to_string();
    let client = client(&registry);
    let auth = auth_for(&registry);
    let mut blobs = Vec::new();
    for blob in manifest
        .layers
        .iter()
        .chain(std::iter::once(&manifest.config))
    {
        blobs.push((blob, store.get(blob)?));
    }
    let bar = progress(blobs.iter().map(|(blob, _)| blob.size).sum(), quiet);
    bar.set_message("pushing");
    let outcome = transfer(&registry, async {
        client.store_auth_if_needed(&registry, &auth).await;
        // All blobs at once: the small ones ride along with the big one.
        let uploads = blobs.iter().map(|(blob, bytes)| async {
            if !registry_has(&registry, &reference, &auth, &blob.digest).await {
                client.push_blob(&reference, bytes, &blob.digest).await?;
            }
            bar.inc(blob.size);
            Ok::<(), oci_client::errors::OciDistributionError>(())
        });
        futures_util::future::try_join_all(uploads).await?;
        // The manifest goes as the store has it, so its digest is kept.
        // (A Docker v2 manifest goes as one: registries check the two agree.)
        let content_type = reqwest::header::HeaderValue::from_str(&descriptor.media_type)
            .unwrap_or(reqwest::header::HeaderValue::from_static(
                store::MANIFEST_TYPE,
            ));
        client
            .push_manifest_raw(&reference, manifest_bytes.clone(), content_type)
            .await
    });
    bar.finish_and_clear();
    outcome?;
    Ok(descriptor.digest)
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  atoll pull localhost:5000/me/hello:0.1\n  atoll pull localhost:5000/atoll/kernel:0.1.0   # a kernel on its own"
)]
pub struct PullArgs {
    /// The image, as REGISTRY/NAME:TAG
    image: String,
    /// Print nothing but errors (no progress bar)
    #[arg(short, long)]
    quiet: bool,
}

pub fn pull(args: PullArgs) -> Result<i32, CliError> {
    let digest = pull_image(&args.image, args.quiet)?;
    if !args.quiet {
        println!("pulled {} ({})", args.image, &digest[..19]);
    }
    Ok(0)
}

/// Pulls an image (or a kernel) into the local store under its full name;
/// returns its manifest digest. Blobs already here are skipped; a blob cut
/// off midway resumes where it stopped; each is checked against its digest.
pub fn pull_image(text: &str, quiet: bool) -> Result<String, RegistryError> {
    let reference = parse_reference(text)?;
    let registry = reference.resolve_registry().to_string();
    let client = client(&registry);
    let auth = auth_for(&registry);
    let store = Store::open()?;
    let accepted = [
        store::MANIFEST_TYPE,
        oci::OCI_INDEX,
        oci::DOCKER_MANIFEST,
        oci::DOCKER_LIST,
    ];
    let container_error = |source| RegistryError::Container {
        image: text.to_string(),
        source,
    };
    let (mut manifest_bytes, _) = network(
        &registry,
        client.pull_manifest_raw(&reference, &auth, &accepted),
    )?;
    // A multi-platform image: its linux/amd64 manifest, by digest (which
    // the client checks the manifest against).
    if oci::is_index(&manifest_bytes) {
        let digest = oci::pick_platform(&manifest_bytes).map_err(container_error)?;
        let by_digest = reference.clone_with_digest(digest);
        (manifest_bytes, _) = network(
            &registry,
            client.pull_manifest_raw(&by_digest, &auth, &accepted),
        )?;
    }
    let manifest = store::parse_manifest(&manifest_bytes).map_err(|source| {
        RegistryError::InvalidManifest {
            image: text.to_string(),
            source,
        }
    })?;
    let media = manifest.config.media_type.as_str();
    if oci::is_container_config(media) {
        oci::check_layers(&manifest).map_err(container_error)?;
    } else if media != store::CONFIG_TYPE && media != store::KERNEL_CONFIG_TYPE {
        return Err(RegistryError::NotAnImage {
            image: text.to_string(),
            config_type: manifest.config.media_type,
        });
    }
    let blobs: Vec<&store::Descriptor> = std::iter::once(&manifest.config)
        .chain(&manifest.layers)
        .collect();
    let missing: Vec<&store::Descriptor> = blobs
        .iter()
        .copied()
        .filter(|blob| !store.verify_or_remove(blob))
        .collect();
    let bar = progress(missing.iter().map(|blob| blob.size).sum(), quiet);
    bar.set_message("pulling");
    // All blobs at once, over one connection pool.
    let fetched = transfer(&registry, async {
        let fetches = missing
            .iter()
            .map(|blob| fetch_blob(&store, &client, &reference, blob, &bar));
        futures_util::future::try_join_all(fetches).await
    });
    let finished = fetched.map_err(DownloadError::from).and_then(|downloads| {
        downloads
            .into_iter()
            .flatten()
            .try_for_each(Download::finish)
    });
    if let Err(source) = finished {
        bar.abandon();
        return Err(RegistryError::Pull {
            image: text.to_string(),
            source,
        });
    }
    bar.finish_and_clear();
    let descriptor = store.tag_manifest(text, &manifest_bytes)?;
    Ok(descriptor.digest)
}

/// A blob downloaded into its `.partial` file, being written and hashed.
struct Download {
    writer: std::thread::JoinHandle<std::io::Result<(String, std::fs::File)>>,
    partial_path: PathBuf,
    path: PathBuf,
    blob: store::Descriptor,
}

impl Download {
    /// Waits for the writer; puts the blob in place if its digest matches.
    fn finish(self) -> Result<(), DownloadError> {
        let written = self
            .writer
            .join()
            .map_err(|_| DownloadError::WriterFailed)?;
        let (digest, _locked) = written.map_err(PathError::at(&self.partial_path))?;
        let size = std::fs::metadata(&self.partial_path).map_or(0, |meta| meta.len());
        if size != self.blob.size || digest != self.blob.digest {
            let _ = std::fs::remove_file(&self.partial_path);
            return Err(DownloadError::Mismatch(self.blob.digest));
        }
        std::fs::rename(&self.partial_path, &self.path).map_err(PathError::at(&self.path))?;
        Ok(())
    }
}

/// Downloads one blob into its `.partial` file, resuming what an earlier
/// pull left there; None if another pull finished it meanwhile.
async fn fetch_blob(
    store: &Store,
    client: &Client,
    reference: &Reference,
    blob: &store::Descriptor,
    bar: &indicatif::ProgressBar,
) -> Result<Option<Download>, oci_client::errors::OciDistributionError> {
    use futures_util::StreamExt;
    use oci_client::client::BlobResponse;
    use oci_client::errors::OciDistributionError;
    use std::io::{Seek, Write};
    let path = store
        .path_of(blob)
        .map_err(|error| OciDistributionError::GenericError(Some(error.to_string())))?;
    let partial_path = path.with_extension("partial");
    let mut partial = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&partial_path)?;
    // One puller per blob; another atoll pulling it waits here.
    partial.lock()?;
    if store.has(blob) {
        bar.inc(blob.size);
        return Ok(None);
    }
    let mut offset = partial.seek(std::io::SeekFrom::End(0))?;
    if offset > blob.size {
        offset = 0;
    }
    let layer = oci_client::client::LayerDescriptor {
        digest: &blob.digest,
        urls: &None,
    };
    // Always a range request: the digest is checked here, once, over the
    // whole file, as it is written (on a thread of its own, beside the
    // download).
    let (stream, offset) = match client
        .pull_blob_stream_partial(reference, &layer, offset, None)
        .await?
    {
        BlobResponse::Partial(stream) => (stream, offset),
        // The whole blob came: start over.
        BlobResponse::Full(stream) => (stream, 0),
    };
    partial.set_len(offset)?;
    partial.seek(std::io::SeekFrom::Start(0))?;
    bar.inc(offset);
    // Chunks go to the writer in batches of about 1 MiB: one wake-up each.
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<bytes::Bytes>>(64);
    let writer = std::thread::spawn(move || -> std::io::Result<(String, std::fs::File)> {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        let mut prefix = std::io::Read::take(&mut partial, offset);
        std::io::copy(&mut prefix, &mut hasher)?;
        let mut file = std::io::BufWriter::with_capacity(1 << 20, partial);
        for batch in receiver {
            for chunk in batch {
                hasher.update(&chunk);
                file.write_all(&chunk)?;
            }
        }
        let file = file.into_inner().map_err(|error| error.into_error())?;
        // The file (and its lock) stays open until the blob is in place.
        Ok((format!("sha256:{:x}", hasher.finalize()), file))
    });
    let mut stream = stream.stream;
    let (mut batch, mut batched) = (Vec::new(), 0);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        bar.inc(chunk.len() as u64);
        batched += chunk.len();
        batch.push(chunk);
        if batched >= 1 << 20 {
            batched = 0;
            if sender.send(std::mem::take(&mut batch)).is_err() {
                break;
            }
        }
    }
    let _ = sender.send(batch);
    Ok(Some(Download {
        writer,
        partial_path,
        path,
        blob: blob.clone(),
    }))
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
pub fn login(args: LoginArgs) -> Result<i32, CliError> {
    let password = if args.password_stdin {
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() {
            return Err(CliError::usage("cannot read the password from stdin"));
        }
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        std::env::var("ATOLL_PASSWORD").map_err(|_| {
            CliError::usage(
                "give the password on stdin with --password-stdin, or in ATOLL_PASSWORD",
            )
        })?
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
        Ok(_) | Err(NetworkError::NoSuchImage { .. }) => {}
        Err(error) => return Err(error.into()),
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
    saved.map_err(|error| CliError::failed(format!("{}: {error}", path.display())))?;
    println!("logged in to {registry}");
    Ok(0)
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
pub fn search(args: SearchArgs) -> Result<i32, CliError> {
    let found = search_registry(&args.registry, args.term.as_deref())?;
    if args.output == "json" {
        println!("{}", serde_json::to_string(&found).unwrap_or_default());
    } else {
        println!("REPOSITORY  TAGS");
        for (repository, tags) in &found {
            println!("{repository}  {}", tags.join(", "));
        }
    }
    Ok(0)
}

fn search_registry(
    registry: &str,
    term: Option<&str>,
) -> Result<BTreeMap<String, Vec<String>>, NetworkError> {
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
                NetworkError::Refused(registry.to_string())
            } else {
                NetworkError::NoCatalog {
                    registry: registry.to_string(),
                    source: error,
                }
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
