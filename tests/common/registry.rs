//! A registry of our own (Debian's docker-registry on a free loopback
//! port) and a workspace with its own image store, for the image tests.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::*;

const REGISTRY: &str = "/usr/bin/docker-registry";

/// A registry of our own, stopped and wiped when dropped.
pub struct Registry {
    child: Child,
    pub dir: PathBuf,
    pub address: String,
}

impl Registry {
    /// Starts one; with `user`, it wants basic auth as that user. None: the
    /// test can't run here (see `require`).
    pub fn start(name: &str, user: Option<(&str, &str)>) -> Option<Self> {
        require(tool(REGISTRY, "docker-registry"))?;
        let dir =
            std::env::temp_dir().join(format!("atoll-registry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("localhost:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        if let Some((user, password)) = user {
            let hash = bcrypt::hash(password, 4).unwrap();
            std::fs::write(dir.join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            config += &format!(
                "auth:\n  htpasswd:\n    realm: atoll-test\n    path: {}\n",
                dir.join("htpasswd").display()
            );
        }
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the registry never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            dir,
            address,
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A scratch directory with its own image store and cache.
pub struct Workspace {
    pub dir: PathBuf,
}

impl Workspace {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("atoll-images-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    pub fn atoll(&self, in_dir: &Path, args: &[&str], stdin: &str) -> Output {
        let _slot = isle_slot();
        let mut child = atoll()
            .current_dir(in_dir)
            .env("ATOLL_HOME", self.dir.join("store"))
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("atoll runs");
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.atoll(&self.dir, args, "")
    }

    /// `atoll init NAME --lang LANG` and `atoll build`, checked.
    pub fn project(&self, name: &str, lang: &str) {
        let made = self.run(&["init", name, "--lang", lang]);
        assert_eq!(status(&made), 0, "{}", stderr(&made));
        let built = self.atoll(&self.dir.join(name), &["build"], "");
        assert_eq!(status(&built), 0, "{}", stderr(&built));
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
