//! The host's configuration: which cores Linux keeps, whether isles may
//! share SMT siblings, and preset partitions for `atoll run -i K`. It lives
//! in `$ATOLL_HOST_CONFIG`, else /etc/atoll/host.toml; without a file the
//! defaults hold.
//!
//! ```toml
//! host_cpus = "0,36"        # CPU list; default: first core of each node
//! share_smt = false
//! [[partition]]             # -i 0
//! cores = 8
//! memory = "4G"
//! [[partition]]             # -i 1
//! cpus = "16-23"
//! memory = "4G"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::policy::HostConfig;
use crate::topology::parse_list;

/// A preset partition: cores or exact CPUs, and memory (as `-m` takes it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    pub cores: Option<u32>,
    pub cpus: Option<String>,
    pub memory: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    host_cpus: Option<String>,
    #[serde(default)]
    share_smt: bool,
    #[serde(default)]
    partition: Vec<Partition>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot read {path}: {source}; make it readable to this user or set ATOLL_HOST_CONFIG to another file")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the host configuration is read from.
pub fn path() -> PathBuf {
    std::env::var_os("ATOLL_HOST_CONFIG")
        .filter(|path| !path.is_empty())
        .map_or_else(|| PathBuf::from("/etc/atoll/host.toml"), PathBuf::from)
}

/// The host configuration and its partitions; defaults if `path` doesn't
/// exist.
pub fn load(path: &Path) -> Result<(HostConfig, Vec<Partition>), ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok((HostConfig::default(), Vec::new()))
        }
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    parse(&text).map_err(|message| ConfigError::Invalid {
        path: path.to_path_buf(),
        message,
    })
}

/// A TOML error as one line: "line N: what is wrong".
pub fn toml_error(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", error.message())
        }
        None => error.message().to_string(),
    }
}

/// Parses the configuration file's text.
pub fn parse(text: &str) -> Result<(HostConfig, Vec<Partition>), String> {
    let file: File = toml::from_str(text).map_err(|error| toml_error(text, &error))?;
    let host_cpus = match &file.host_cpus {
        Some(list) => Some(
            parse_list(list)
                .filter(|cpus| !cpus.is_empty())
                .ok_or_else(|| format!("host_cpus = {list:?}: use a CPU list such as \"0,36\""))?,
        ),
        None => None,
    };
    for (index, partition) in file.partition.iter().enumerate() {
        match (&partition.cores, &partition.cpus) {
            (Some(0), _) => return Err(format!("partition {index}: cores = 0")),
            (Some(_), Some(_)) | (None, None) => {
                return Err(format!(
                    "partition {index}: give either cores = N or cpus = \"LIST\""
                ))
            }
            (None, Some(list)) if parse_list(list).is_none_or(|cpus| cpus.is_empty()) => {
                return Err(format!("partition {index}: cpus = {list:?} is no CPU list"))
            }
            _ => {}
        }
    }
    Ok((
        HostConfig {
            host_cpus,
            share_smt: file.share_smt,
        },
        file.partition,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_configuration_parses() {
        let (config, partitions) = parse(
            "host_cpus = \"0,36\"\nshare_smt = true\n\
             [[partition]]\ncores = 8\nmemory = \"4G\"\n\
             [[partition]]\ncpus = \"16-23\"\n",
        )
        .unwrap();
        assert_eq!(config.host_cpus, Some(vec![0, 36]));
        assert!(config.share_smt);
        assert_eq!(partitions[0].cores, Some(8));
        assert_eq!(partitions[0].memory.as_deref(), Some("4G"));
        assert_eq!(partitions[1].cpus.as_deref(), Some("16-23"));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            ("host_cpus = \"x\"", "host_cpus"),
            ("[[partition]]\nmemory = \"1G\"", "either cores"),
            ("[[partition]]\ncores = 0", "cores = 0"),
            ("[[partition]]\ncpus = \"3-1\"", "no CPU list"),
            ("share_smt = 3", "bool"),
            ("colour = 1", "unknown field"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
        let missing = load(Path::new("/nonexistent/atoll.toml")).unwrap();
        assert_eq!(missing.0, HostConfig::default());
    }
}
