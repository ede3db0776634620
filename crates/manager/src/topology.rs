//! The host's cores, SMT siblings, NUMA nodes and per-node memory, read
//! from /sys, or described by hand for tests (the allocation policy is a
//! pure function of this description).

use std::collections::BTreeMap;
use std::path::Path;

/// One hardware thread (a Linux CPU number).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    pub id: u32,
    /// The physical core it belongs to (unique across the machine).
    pub core: u32,
    pub node: u32,
}

/// A NUMA node and its memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub id: u32,
    pub memory: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Online CPUs, by id.
    pub cpus: Vec<Cpu>,
    pub nodes: Vec<Node>,
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {text:?}")]
    Parse { path: String, text: String },
}

/// Parses a Linux CPU list ("0-3,8,10-11").
pub fn parse_list(text: &str) -> Option<Vec<u32>> {
    let mut ids = Vec::new();
    for part in text.trim().split(',').filter(|part| !part.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last): (u32, u32) = (first.parse().ok()?, last.parse().ok()?);
                if first > last || last - first > 1 << 16 {
                    return None;
                }
                ids.extend(first..=last);
            }
            None => ids.push(part.parse().ok()?),
        }
    }
    Some(ids)
}

/// Formats ids as a Linux CPU list, ranges folded.
pub fn format_list(ids: &[u32]) -> String {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut index = 0;
    while index < sorted.len() {
        let start = sorted[index];
        let mut end = start;
        while index + 1 < sorted.len() && sorted[index + 1] == end + 1 {
            index += 1;
            end += 1;
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        index += 1;
    }
    parts.join(",")
}

fn read(path: &Path) -> Result<String, TopologyError> {
    std::fs::read_to_string(path).map_err(|source| TopologyError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn parse<T: std::str::FromStr>(path: &Path) -> Result<T, TopologyError> {
    let text = read(path)?;
    text.trim().parse().map_err(|_| TopologyError::Parse {
        path: path.display().to_string(),
        text,
    })
}

impl Topology {
    /// The machine as /sys (at `root`, normally "/sys") describes it.
    /// Without NUMA information everything is node 0, with all of MemTotal.
    pub fn from_sys(root: &Path) -> Result<Self, TopologyError> {
        let cpu_dir = root.join("devices/system/cpu");
        let online_path = cpu_dir.join("online");
        let online = read(&online_path)?;
        let ids = parse_list(&online).ok_or(TopologyError::Parse {
            path: online_path.display().to_string(),
            text: online.clone(),
        })?;
        let node_dir = root.join("devices/system/node");
        let mut node_of = BTreeMap::new();
        let mut nodes = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&node_dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Some(id) = name
                    .strip_prefix("node")
                    .and_then(|n| n.parse::<u32>().ok())
                else {
                    continue;
                };
                let cpulist = read(&entry.path().join("cpulist"))?;
                for cpu in parse_list(&cpulist).unwrap_or_default() {
                    node_of.insert(cpu, id);
                }
                let meminfo = read(&entry.path().join("meminfo")).unwrap_or_default();
                nodes.push(Node {
                    id,
                    memory: kib_field(&meminfo, "MemTotal:").unwrap_or(0) * 1024,
                });
            }
        }
        if nodes.is_empty() {
            let meminfo = read(&root.join("../proc/meminfo"))
                .or_else(|_| read(Path::new("/proc/meminfo")))
                .unwrap_or_default();
            nodes.push(Node {
                id: 0,
                memory: kib_field(&meminfo, "MemTotal:").unwrap_or(0) * 1024,
            });
        }
        nodes.sort_by_key(|node| node.id);
        let mut cpus = Vec::new();
        for id in ids {
            let topology = cpu_dir.join(format!("cpu{id}/topology"));
            let core_id: u32 = parse(&topology.join("core_id")).unwrap_or(id);
            let package: u32 = parse(&topology.join("physical_package_id")).unwrap_or(0);
            cpus.push(Cpu {
                id,
                // core_id repeats across packages: make it machine-unique.
                core: package * 65536 + core_id,
                node: node_of.get(&id).copied().unwrap_or(0),
            });
        }
        Ok(Self { cpus, nodes })
    }

    /// A made-up machine: `nodes` nodes of `cores_per_node` physical cores
    /// with `threads` hardware threads each and `memory_per_node` bytes.
    /// CPU ids are numbered as Linux does: first threads of every core,
    /// then second threads.
    pub fn synthetic(nodes: u32, cores_per_node: u32, threads: u32, memory_per_node: u64) -> Self {
        let cores = nodes * cores_per_node;
        let mut cpus = Vec::new();
        for thread in 0..threads {
            for core in 0..cores {
                cpus.push(Cpu {
                    id: thread * cores + core,
                    core,
                    node: core / cores_per_node,
                });
            }
        }
        Self {
            cpus,
            nodes: (0..nodes)
                .map(|id| Node {
                    id,
                    memory: memory_per_node,
                })
                .collect(),
        }
    }

    /// The CPUs of physical core `core`, lowest id first.
    pub fn threads_of(&self, core: u32) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .cpus
            .iter()
            .filter(|cpu| cpu.core == core)
            .map(|cpu| cpu.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    pub fn cpu(&self, id: u32) -> Option<&Cpu> {
        self.cpus.iter().find(|cpu| cpu.id == id)
    }

    /// Physical cores in id order of their first thread, with their node.
    pub fn cores(&self) -> Vec<(u32, u32)> {
        let mut cores: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
        for cpu in &self.cpus {
            let entry = cores.entry(cpu.core).or_insert((cpu.id, cpu.node));
            entry.0 = entry.0.min(cpu.id);
        }
        let mut list: Vec<(u32, u32, u32)> = cores
            .into_iter()
            .map(|(core, (first, node))| (first, core, node))
            .collect();
        list.sort_unstable();
        list.into_iter()
            .map(|(_, core, node)| (core, node))
            .collect()
    }
}

fn kib_field(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_format() {
        assert_eq!(
            parse_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_list(""), Some(vec![]));
        assert_eq!(parse_list("3-1"), None);
        assert_eq!(parse_list("x"), None);
        assert_eq!(format_list(&[11, 0, 1, 2, 3, 8, 10]), "0-3,8,10-11");
    }

    #[test]
    fn the_real_machine_reads_from_sys() {
        let topology = Topology::from_sys(Path::new("/sys")).unwrap();
        assert!(!topology.cpus.is_empty());
        assert!(topology.nodes.iter().map(|node| node.memory).sum::<u64>() > 0);
        for cpu in &topology.cpus {
            assert!(topology.nodes.iter().any(|node| node.id == cpu.node));
        }
    }

    #[test]
    fn synthetic_machines_number_threads_as_linux_does() {
        let smt = Topology::synthetic(2, 16, 2, 64 << 30);
        assert_eq!(smt.cpus.len(), 64);
        assert_eq!(smt.threads_of(0), [0, 32]);
        assert_eq!(smt.cpu(17).unwrap().node, 1);
        assert_eq!(smt.cores().len(), 32);
    }
}
