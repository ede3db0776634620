//! The container images docker runs: a Debian root filesystem (mmdebstrap)
//! made an OCI image by umoci, pushed by skopeo to a real registry, then
//! pulled and run by atoll: Entrypoint, Cmd, Env, WorkingDir and User and
//! the flags that override them; a layer of whiteouts; Docker v2 manifests;
//! gzip, zstd and uncompressed layers unpacked once per diff_id and shared;
//! a multi-platform index; and the refusals.

mod common;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::debian::debian_tree;
use common::registry::{Registry, Workspace};
use common::*;
use serde_json::{json, Value};
use sha2::Digest;

const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// What the image's Cmd prints: where it runs, as whom, with which Env.
const SCRIPT: &str = "import os, sys; print('hi from', os.getcwd(), os.getuid(), os.environ.get('GREETING'), sys.argv[1:])";

fn checked(what: &str, output: Output) -> Output {
    assert!(
        output.status.success(),
        "{what}: {}{}",
        stdout(&output),
        stderr(&output)
    );
    output
}

fn tool_run(program: &Path, args: &[&str]) -> Output {
    let output = Command::new(program).args(args).output().unwrap();
    checked(&format!("{} {args:?}", program.display()), output)
}

/// An OCI layout made by umoci: tag `base`, the Debian tree as one layer,
/// and `upper`, a layer on top that removes and adds files.
struct Layout {
    dir: PathBuf,
    _scratch: Scratch,
}

impl Layout {
    fn new(umoci: &Path, tree: &Path) -> Self {
        let scratch = Scratch::new("layout");
        let dir = scratch.0.join("layout");
        let layout = |tag: &str| format!("{}:{tag}", dir.display());
        let bundle = scratch.0.join("bundle");
        let bundle = bundle.to_str().unwrap();
        tool_run(umoci, &["init", "--layout", dir.to_str().unwrap()]);
        tool_run(umoci, &["new", "--image", &layout("base")]);
        tool_run(umoci, &["unpack", "--image", &layout("base"), bundle]);
        let copied = Command::new("cp")
            .args(["-a", &format!("{}/.", tree.display())])
            .arg(format!("{bundle}/rootfs/"))
            .output()
            .unwrap();
        checked("cp -a", copied);
        tool_run(umoci, &["repack", "--image", &layout("base"), bundle]);
        tool_run(
            umoci,
            &[
                "config",
                "--image",
                &layout("base"),
                "--config.entrypoint",
                "python3",
                "--config.cmd",
                "-c",
                "--config.cmd",
                SCRIPT,
                "--config.cmd",
                "from-cmd",
                "--config.env",
                "GREETING=from-the-image",
                "--config.workingdir",
                "/root",
                "--config.user",
                "nobody",
            ],
        );
        // A layer that deletes a file and a directory's contents and adds one.
        let upper = scratch.0.join("upper");
        let upper = upper.to_str().unwrap();
        tool_run(umoci, &["unpack", "--image", &layout("base"), upper]);
        let rootfs = Path::new(upper).join("rootfs");
        std::fs::remove_file(rootfs.join("etc/debian_version")).unwrap();
        std::fs::remove_dir_all(rootfs.join("usr/share/doc")).unwrap();
        std::fs::create_dir(rootfs.join("usr/share/doc")).unwrap();
        std::fs::write(rootfs.join("usr/share/doc/only"), "the upper layer's\n").unwrap();
        std::fs::write(rootfs.join("etc/added"), "added\n").unwrap();
        tool_run(umoci, &["repack", "--image", &layout("upper"), upper]);
        Self {
            dir,
            _scratch: scratch,
        }
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    }

    fn blob(&self, digest: &str) -> Vec<u8> {
        std::fs::read(self.blob_path(digest)).unwrap()
    }

    fn put(&self, bytes: &[u8]) -> String {
        let digest = format!("sha256:{:x}", sha2::Sha256::digest(bytes));
        std::fs::write(self.blob_path(&digest), bytes).unwrap();
        digest
    }

    fn index(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir.join("index.json")).unwrap()).unwrap()
    }

    /// The descriptor tagged `tag`.
    fn tagged(&self, tag: &str) -> Value {
        self.index()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap_or_else(|| panic!("no tag {tag}"))
            .clone()
    }

    fn json(&self, descriptor: &Value) -> Value {
        serde_json::from_slice(&self.blob(descriptor["digest"].as_str().unwrap())).unwrap()
    }

    /// Puts `value` as a blob of `media_type` and tags it `tag`.
    fn tag(&self, tag: &str, media_type: &str, value: &Value) -> Value {
        let bytes = serde_json::to_vec(value).unwrap();
        let descriptor = json!({
            "mediaType": media_type,
            "digest": self.put(&bytes),
            "size": bytes.len(),
        });
        let mut index = self.index();
        let mut tagged = descriptor.clone();
        tagged["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
        index["manifests"].as_array_mut().unwrap().push(tagged);
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        descriptor
    }

    /// `base` again as `tag`, its layers stored uncompressed or as zstd:
    /// new blobs, the same diff_ids.
    fn recompressed(&self, tag: &str, zstd: bool) {
        let mut manifest = self.json(&self.tagged("base"));
        for layer in manifest["layers"].as_array_mut().unwrap() {
            let gzip = self.blob(layer["digest"].as_str().unwrap());
            let mut tar = Vec::new();
            flate2::read::GzDecoder::new(gzip.as_slice())
                .read_to_end(&mut tar)
                .unwrap();
            let (bytes, media_type) = match zstd {
                true => (
                    zstd::encode_all(tar.as_slice(), 3).unwrap(),
                    "application/vnd.oci.image.layer.v1.tar+zstd",
                ),
                false => (tar, "application/vnd.oci.image.layer.v1.tar"),
            };
            layer["digest"] = json!(self.put(&bytes));
            layer["size"] = json!(bytes.len());
            layer["mediaType"] = json!(media_type);
        }
        self.tag(tag, MANIFEST_TYPE, &manifest);
    }

    /// An index of `base` and an arm64 twin (listed first), tagged `tag`;
    /// with `amd64: false`, the twin alone.
    fn multi_platform(&self, tag: &str, amd64: bool) {
        let base = self.tagged("base");
        let mut manifest = self.json(&base);
        let mut config = self.json(&manifest["config"]);
        config["architecture"] = json!("arm64");
        config["variant"] = json!("v8");
        let config_bytes = serde_json::to_vec(&config).unwrap();
        manifest["config"]["digest"] = json!(self.put(&config_bytes));
        manifest["config"]["size"] = json!(config_bytes.len());
        let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
        let mut manifests = vec![json!({
            "mediaType": MANIFEST_TYPE,
            "digest": self.put(&manifest_bytes),
            "size": manifest_bytes.len(),
            "platform": { "architecture": "arm64", "os": "linux", "variant": "v8" },
        })];
        if amd64 {
            manifests.push(json!({
                "mediaType": MANIFEST_TYPE,
                "digest": base["digest"],
                "size": base["size"],
                "platform": { "architecture": "amd64", "os": "linux" },
            }));
        }
        let index = json!({ "schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests });
        self.tag(tag, INDEX_TYPE, &index);
    }

    /// `skopeo copy` of tag `tag` to `remote` (every platform of an index).
    fn push(&self, skopeo: &Path, tag: &str, remote: &str, extra: &[&str]) {
        let source = format!("oci:{}:{tag}", self.dir.display());
        let destination = format!("docker://{remote}");
        let mut args = vec!["copy", "--quiet", "--dest-tls-verify=false", "--all"];
        args.extend_from_slice(extra);
        args.extend([source.as_str(), destination.as_str()]);
        tool_run(skopeo, &args);
    }
}

/// The tools, the Debian tree as an OCI layout, a registry and a store.
fn setup(name: &str) -> Option<(Layout, Registry, Workspace, PathBuf)> {
    let umoci = require(tool("umoci", "umoci"))?;
    let skopeo = require(tool("skopeo", "skopeo"))?;
    if !require_kvm() {
        return None;
    }
    let tree = debian_tree()?;
    let registry = Registry::start(name, None)?;
    let layout = Layout::new(&umoci, &tree);
    Some((layout, registry, Workspace::new(name), skopeo))
}

fn subdirectories(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.is_dir())
                .filter(|path| !path.file_name().unwrap().to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[test]
fn a_debian_image_from_a_registry_runs_as_its_config_says() {
    let Some((layout, registry, work, skopeo)) = setup("debian") else {
        return;
    };
    let remote = format!("{}/me/debian:1", registry.address);
    layout.push(&skopeo, "base", &remote, &[]);
    let pulled = work.run(&["pull", &remote]);
    assert_eq!(status(&pulled), 0, "{}", stderr(&pulled));
    let listed = stdout(&work.run(&["images", "-q"]));
    assert_eq!(listed, format!("{remote}\n"));

    // Entrypoint + Cmd, Env, WorkingDir, User, as docker runs them.
    let ran = work.run(&["run", &remote]);
    assert_eq!(status(&ran), 0, "{}", stderr(&ran));
    assert_eq!(
        stdout(&ran),
        "hi from /root 65534 from-the-image ['from-cmd']\n"
    );
    // Arguments replace the Cmd (the Entrypoint stays); flags override.
    let overridden = work.run(&[
        "run",
        "-e",
        "GREETING=from-the-flag",
        "-w",
        "/var",
        "-u",
        "0",
        &remote,
        "-c",
        SCRIPT,
        "an",
        "argument",
    ]);
    assert_eq!(status(&overridden), 0, "{}", stderr(&overridden));
    assert_eq!(
        stdout(&overridden),
        "hi from /var 0 from-the-flag ['an', 'argument']\n"
    );
    // --entrypoint replaces it and drops the Cmd; coreutils and NSS in the
    // image answer as they do in a chroot of the same tree.
    let id = work.run(&["run", "--entrypoint", "id", &remote]);
    assert_eq!(status(&id), 0, "{}", stderr(&id));
    assert_eq!(
        stdout(&id),
        "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"
    );
    let listing = work.run(&["run", "--entrypoint", "ls", &remote, "/"]);
    let native = {
        let _slot = isle_slot();
        Command::new("chroot")
            .arg(debian_tree().unwrap())
            .args(["ls", "/"])
            .output()
            .unwrap()
    };
    assert_eq!(status(&listing), 0, "{}", stderr(&listing));
    assert_eq!(stdout(&listing), stdout(&native));
    // The image's root is read-only.
    let write = work.run(&["run", "-u", "0", &remote, "-c", "open('/etc/x', 'w')"]);
    assert_eq!(status(&write), 1);
    assert!(stderr(&write).contains("[Errno 30]"), "{}", stderr(&write));
}

#[test]
fn layers_unpack_once_per_diff_id_whatever_their_compression() {
    let Some((layout, registry, work, skopeo)) = setup("layers") else {
        return;
    };
    layout.recompressed("zstd", true);
    layout.recompressed("plain", false);
    let images = [
        ("gzip", "base", &[][..]),
        ("docker", "base", &["--format", "v2s2"][..]),
        ("zstd", "zstd", &[][..]),
        ("plain", "plain", &[][..]),
        ("upper", "upper", &[][..]),
    ];
    // Each in a repository of its own, so no blob is shared in the registry.
    let check = "import os; print(os.path.exists('/etc/debian_version'), os.path.exists('/etc/added'), sorted(os.listdir('/usr/share/doc')))";
    for (name, tag, flags) in images {
        let remote = format!("{}/me/{name}:1", registry.address);
        layout.push(&skopeo, tag, &remote, flags);
        let ran = work.run(&["run", &remote, "-c", check]);
        assert_eq!(status(&ran), 0, "{name}: {}", stderr(&ran));
        let expected = match name {
            "upper" => "False True ['only']\n".to_string(),
            _ => {
                let mut docs: Vec<String> =
                    std::fs::read_dir(debian_tree().unwrap().join("usr/share/doc"))
                        .unwrap()
                        .map(|entry| format!("'{}'", entry.unwrap().file_name().to_string_lossy()))
                        .collect();
                docs.sort();
                format!("True False [{}]\n", docs.join(", "))
            }
        };
        assert_eq!(stdout(&ran), expected, "{name}");
    }
    // A pulled Docker v2 image goes back as one, byte for byte.
    let pulled = format!("{}/me/docker:1", registry.address);
    let again = format!("{}/me/docker-again:1", registry.address);
    assert_eq!(status(&work.run(&["tag", &pulled, &again])), 0);
    let pushed = work.run(&["push", &again]);
    assert_eq!(status(&pushed), 0, "{}", stderr(&pushed));
    let raw = |image: &str| {
        let remote = format!("docker://{image}");
        stdout(&tool_run(
            &skopeo,
            &["inspect", "--raw", "--tls-verify=false", &remote],
        ))
    };
    let manifest = raw(&again);
    assert!(
        manifest.contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{manifest}"
    );
    assert_eq!(manifest, raw(&pulled));
    let cache = work.dir.join("cache/atoll");
    // The base layer once (four encodings, one diff_id) and the upper one.
    assert_eq!(subdirectories(&cache.join("layers")).len(), 2);
    let roots = subdirectories(&cache.join("rootfs"));
    assert_eq!(roots.len(), 2, "{roots:?}");
    // The two roots share the base layer's files: the same inodes.
    let inode = |root: &Path| {
        std::fs::metadata(root.join("usr/bin/python3.11"))
            .unwrap()
            .ino()
    };
    assert_eq!(inode(&roots[0]), inode(&roots[1]));
}

#[test]
fn the_linux_amd64_image_is_picked_from_an_index() {
    let Some((layout, registry, work, skopeo)) = setup("index") else {
        return;
    };
    layout.multi_platform("multi", true);
    layout.multi_platform("armonly", false);
    let multi = format!("{}/me/multi:1", registry.address);
    layout.push(&skopeo, "multi", &multi, &[]);
    let ran = work.run(&[
        "run",
        &multi,
        "-c",
        "import platform; print(platform.machine())",
    ]);
    assert_eq!(status(&ran), 0, "{}", stderr(&ran));
    assert_eq!(stdout(&ran), "x86_64\n");

    let arm = format!("{}/me/armonly:1", registry.address);
    layout.push(&skopeo, "armonly", &arm, &[]);
    let refused = work.run(&["pull", &arm]);
    assert_one_line_error(&refused, 125, &["no linux/amd64 image", "linux/arm64/v8"]);
}

#[test]
fn bad_container_image_requests_get_one_line_errors() {
    let Some((layout, registry, work, skopeo)) = setup("errors") else {
        return;
    };
    // An image with neither Entrypoint nor Cmd.
    let mut manifest = layout.json(&layout.tagged("base"));
    let mut config = layout.json(&manifest["config"]);
    config["config"] = json!({ "Env": ["PATH=/usr/bin:/bin"] });
    let bytes = serde_json::to_vec(&config).unwrap();
    manifest["config"]["digest"] = json!(layout.put(&bytes));
    manifest["config"]["size"] = json!(bytes.len());
    layout.tag("bare", MANIFEST_TYPE, &manifest);
    let bare = format!("{}/me/bare:1", registry.address);
    layout.push(&skopeo, "bare", &bare, &[]);
    let no_command = work.run(&["run", &bare]);
    assert_one_line_error(&no_command, 2, &["neither Entrypoint nor Cmd"]);
    // With a program given it runs.
    let given = work.run(&["run", &bare, "true"]);
    assert_eq!(status(&given), 0, "{}", stderr(&given));
    let missing = work.run(&["run", &bare, "no-such-program"]);
    assert_one_line_error(&missing, 127, &["no-such-program", "PATH"]);
    // --entrypoint only means something for a container image.
    let host = work.run(&["run", "--entrypoint", "ls", "/bin/true"]);
    assert_one_line_error(&host, 2, &["--entrypoint", "container image"]);
    // An image with a layer type no one can unpack is refused before any
    // layer is fetched.
    manifest["layers"][0]["mediaType"] = json!("application/vnd.oci.image.layer.v1.tar+lz4");
    layout.tag("odd", MANIFEST_TYPE, &manifest);
    let odd = format!("{}/me/odd:1", registry.address);
    layout.push(&skopeo, "odd", &odd, &[]);
    let refused = work.run(&["pull", &odd]);
    assert_one_line_error(&refused, 125, &["tar+lz4", "tar, tar+gzip and tar+zstd"]);
}

#[test]
fn a_project_builds_on_a_debian_base_and_runs_on_its_root() {
    let Some((layout, registry, work, skopeo)) = setup("base") else {
        return;
    };
    let base = format!("{}/me/debian:1", registry.address);
    layout.push(&skopeo, "base", &base, &[]);
    let project = work.dir.join("ondebian");
    std::fs::create_dir_all(project.join("static")).unwrap();
    std::fs::write(project.join("static/note.txt"), "from the project\n").unwrap();
    std::fs::write(
        project.join("main.c"),
        r#"#include <stdio.h>
#include <stdlib.h>
static void show(const char *path) {
	char line[128] = "";
	FILE *f = fopen(path, "r");
	printf("%s: %s", path, f && fgets(line, sizeof line, f) ? line : "missing\n");
}
int main(int argc, char **argv) {
	show("/etc/debian_version");
	show("/srv/note.txt");
	show("/proc/meminfo");
	printf("argv[0] %s, argv[1] %s, GREETING %s\n", argv[0], argc > 1 ? argv[1] : "-", getenv("GREETING"));
	return 0;
}
"#,
    )
    .unwrap();
    std::fs::write(
        project.join("atoll.toml"),
        format!(
            "[app]\nname = \"ondebian\"\nversion = \"0.1.0\"\n\n[build]\n\
             command = \"gcc -O2 -o ondebian main.c\"\nfiles = [\"static:/srv\"]\n\
             base = \"{base}\"\n\n[run]\nprogram = \"ondebian\"\nargs = [\"from-the-toml\"]\n\
             env = {{ GREETING = \"hello\" }}\nmemory = \"256M\"\n"
        ),
    )
    .unwrap();
    let built = work.atoll(&project, &["build"], "");
    assert_eq!(status(&built), 0, "{}", stderr(&built));
    assert!(
        stdout(&built).contains("on ") && stdout(&built).contains("/usr/local/bin/ondebian"),
        "{}",
        stdout(&built)
    );
    let version =
        std::fs::read_to_string(debian_tree().unwrap().join("etc/debian_version")).unwrap();
    let expected = |arg: &str, greeting: &str| {
        format!(
            "/etc/debian_version: {version}/srv/note.txt: from the project\n\
             /proc/meminfo: MemTotal:         262144 kB\n\
             argv[0] /usr/local/bin/ondebian, argv[1] {arg}, GREETING {greeting}\n"
        )
    };
    // As an image and as the project; arguments and -e override the toml.
    for (args, arg, greeting) in [
        (vec!["run", "ondebian:0.1.0"], "from-the-toml", "hello"),
        (
            vec!["run", "-e", "GREETING=flag", "ondebian:0.1.0", "given"],
            "given",
            "flag",
        ),
        (
            vec!["run", project.to_str().unwrap()],
            "from-the-toml",
            "hello",
        ),
    ] {
        let ran = work.run(&args);
        assert_eq!(status(&ran), 0, "{args:?}: {}", stderr(&ran));
        assert_eq!(stdout(&ran), expected(arg, greeting), "{args:?}");
    }
    // It is a container image: pushed, its config says what docker needs.
    let remote = format!("{}/me/ondebian:1", registry.address);
    assert_eq!(status(&work.run(&["tag", "ondebian:0.1.0", &remote])), 0);
    let pushed = work.run(&["push", &remote]);
    assert_eq!(status(&pushed), 0, "{}", stderr(&pushed));
    let config = tool_run(
        &skopeo,
        &[
            "inspect",
            "--config",
            "--tls-verify=false",
            &format!("docker://{remote}"),
        ],
    );
    let config: Value = serde_json::from_slice(&config.stdout).unwrap();
    assert_eq!(
        config["config"]["Entrypoint"],
        json!(["/usr/local/bin/ondebian"])
    );
    assert_eq!(config["config"]["Cmd"], json!(["from-the-toml"]));
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);

    // A base that is no container image is refused in one line.
    let plain = work.dir.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("main.c"), "int main(void) { return 0; }\n").unwrap();
    std::fs::write(
        plain.join("atoll.toml"),
        "[app]\nname = \"plain\"\nversion = \"1\"\n\n[build]\ncommand = \"gcc -o plain main.c\"\n\
         base = \"nothing-here:1\"\n\n[run]\nprogram = \"plain\"\n",
    )
    .unwrap();
    let refused = work.atoll(&plain, &["build", "-q"], "");
    assert_one_line_error(
        &refused,
        2,
        &["[build] base nothing-here:1", "no such image"],
    );
}
