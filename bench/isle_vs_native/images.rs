//! Issue 7: image size, running from the store, and push/pull through a
//! registry against curl.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::measure::{median, wall_ms, ATOLL};

/// Issue 7's table: images.
pub fn images_section() {
    println!("\n| images | isle | native | isle/native | target |");
    println!("| --- | --- | --- | --- | --- |");
    let work = std::env::temp_dir().join(format!("atoll-bench-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("scratch");
    let atoll = |dir: &Path, args: &[&str]| {
        let output = Command::new(ATOLL)
            .args(args)
            .current_dir(dir)
            .env("ATOLL_HOME", work.join("store"))
            .output()
            .expect("atoll runs");
        assert!(
            output.status.success(),
            "atoll {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    atoll(&work, &["init", "hello", "--lang", "c"]);
    atoll(&work.join("hello"), &["build"]);
    let listed = atoll(&work, &["images", "-o", "json"]);
    let images: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    let size = images[0]["size"].as_u64().expect("size");
    println!(
        "| size of the hello image (C): config, kernel and program | {:.0} KiB | - | - | at most 1 MiB |",
        size as f64 / 1024.0
    );
    let program = work.join("hello/hello");
    let by_path = wall_ms(|| {
        let mut command = Command::new(ATOLL);
        command.arg("run").arg(&program);
        command
    });
    let by_image = wall_ms(|| {
        let mut command = Command::new(ATOLL);
        command
            .args(["run", "hello:0.1.0"])
            .env("ATOLL_HOME", work.join("store"));
        command
    });
    println!(
        "| `atoll run hello:0.1.0` from the store vs `atoll run ./hello`, wall time | {by_image:.2} ms | {by_path:.2} ms | {:.2}x | at most 1.1x |",
        by_image / by_path
    );
    transfers(&work, &atoll);
    let _ = std::fs::remove_dir_all(&work);
}

/// Push and pull of an image with a 100 MiB files layer through a real
/// registry on loopback, against curl moving the same blob.
fn transfers(work: &Path, atoll: &dyn Fn(&Path, &[&str]) -> std::process::Output) {
    const REGISTRY: &str = "/usr/bin/docker-registry";
    if !Path::new(REGISTRY).exists() || Command::new("curl").arg("--version").output().is_err() {
        println!(
            "| push and pull of a 100 MiB layer | skipped: needs docker-registry and curl | | | |"
        );
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let registry_dir = work.join("registry");
    std::fs::create_dir_all(&registry_dir).expect("scratch");
    let config = registry_dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            registry_dir.join("data").display()
        ),
    )
    .expect("config");
    let mut registry = Command::new(REGISTRY)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry starts");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let address = format!("localhost:{port}");
    // A project whose image carries 100 MiB of incompressible data.
    let project = work.join("big");
    std::fs::create_dir_all(project.join("data")).expect("scratch");
    let mut data = vec![0u8; 100 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for chunk in data.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(project.join("data/blob.bin"), &data).expect("data");
    std::fs::copy(work.join("hello/hello"), project.join("hello")).expect("program");
    std::fs::write(
        project.join("atoll.toml"),
        "[app]\nname = \"big\"\nversion = \"1\"\n[build]\ncommand = \"true\"\nfiles = [\"data:/data\"]\n[run]\nprogram = \"hello\"\n",
    )
    .expect("manifest");
    atoll(&project, &["build", "-q"]);
    let inspected = atoll(work, &["inspect", "big:1"]);
    let inspected: serde_json::Value = serde_json::from_slice(&inspected.stdout).expect("json");
    let layer = inspected["manifest"]["layers"]
        .as_array()
        .and_then(|layers| {
            layers
                .iter()
                .find(|layer| layer["mediaType"] == "application/vnd.atoll.files.v1.tar")
        })
        .expect("a files layer")
        .clone();
    let digest = layer["digest"].as_str().expect("digest").to_string();
    let blob = work
        .join("store/blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let seconds = |command: &mut Command| {
        let start = Instant::now();
        let output = command.output().expect("runs");
        assert!(
            output.status.success(),
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        (start.elapsed().as_secs_f64(), output)
    };
    let (mut atoll_push, mut curl_push, mut atoll_pull, mut curl_pull) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..5 {
        // A new repository each round, so that nothing is there yet.
        let remote = format!("{address}/bench/atoll-{round}:1");
        atoll(work, &["tag", "big:1", &remote]);
        atoll_push.push(
            seconds(
                Command::new(ATOLL)
                    .args(["push", "-q", &remote])
                    .env("ATOLL_HOME", work.join("store")),
            )
            .0,
        );
        // curl: POST for an upload session, then one PUT of the blob.
        let start = Instant::now();
        let (_, session) = seconds(Command::new("curl").args([
            "-sS",
            "-X",
            "POST",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!("http://{address}/v2/bench/curl-{round}/blobs/uploads/"),
        ]));
        let headers = String::from_utf8_lossy(&session.stdout).into_owned();
        let location = headers
            .lines()
            .find_map(|line| {
                line.strip_prefix("Location: ")
                    .or_else(|| line.strip_prefix("location: "))
            })
            .expect("an upload location")
            .trim()
            .to_string();
        let separator = if location.contains('?') { '&' } else { '?' };
        seconds(Command::new("curl").args([
            "-sS",
            "-f",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "-T",
            &blob.to_string_lossy(),
            &format!("{location}{separator}digest={digest}"),
        ]));
        curl_push.push(start.elapsed().as_secs_f64());

        // Pull into an empty store, against curl fetching the blob to disk.
        let fresh = work.join(format!("pulled-{round}"));
        atoll_pull.push(
            seconds(
                Command::new(ATOLL)
                    .args(["pull", "-q", &remote])
                    .env("ATOLL_HOME", &fresh),
            )
            .0,
        );
        let _ = std::fs::remove_dir_all(&fresh);
        let target = work.join("curl-blob");
        curl_pull.push(
            seconds(Command::new("curl").args([
                "-sS",
                "-f",
                "-o",
                &target.to_string_lossy(),
                &format!("http://{address}/v2/bench/atoll-{round}/blobs/{digest}"),
            ]))
            .0,
        );
        let _ = std::fs::remove_file(&target);
    }
    let _ = registry.kill();
    let _ = registry.wait();
    let (push, curl_up) = (median(atoll_push) * 1000.0, median(curl_push) * 1000.0);
    let (pull, curl_down) = (median(atoll_pull) * 1000.0, median(curl_pull) * 1000.0);
    println!(
        "| push of an image with a 100 MiB layer vs curl uploading that blob, wall time | {push:.0} ms | {curl_up:.0} ms | {:.2}x | at most 1.2x |",
        push / curl_up
    );
    println!(
        "| pull of it into an empty store vs curl downloading that blob, wall time | {pull:.0} ms | {curl_down:.0} ms | {:.2}x | at most 1.2x |",
        pull / curl_down
    );
}
