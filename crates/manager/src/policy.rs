//! Who gets which cores and memory: a pure function of the topology, the
//! host's configuration and what running isles hold.
//!
//! - Linux keeps its cores (default: the first physical core of each node);
//!   the isles' offload threads run there.
//! - An isle gets whole physical cores: one vCPU per core, on its first
//!   hardware thread; the core's other threads stay idle unless the host
//!   allows SMT sharing.
//! - Its cores sit on one NUMA node when they fit there (the node with the
//!   fewest free cores that still fits, so big holes stay whole), and its
//!   memory counts against that node.
//! - Without room the answer names who holds what; `--overcommit` shares
//!   the least-used cores instead.

use std::collections::{BTreeMap, BTreeSet};

use crate::topology::{format_list, Topology};

/// What is handed out: the CPUs of one core (or one CPU when SMT is
/// shared), and their node.
type Unit = (Vec<u32>, u32);

/// What the host's owner decides (the host config file and `--host-cores`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// CPUs Linux keeps (whole cores are kept); None: the first physical
    /// core of each node.
    pub host_cpus: Option<Vec<u32>>,
    /// Let two isles share the hardware threads of one core.
    pub share_smt: bool,
}

/// What an isle asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// This many cores, wherever they fit best.
    Cores(u32),
    /// Exactly these CPUs (`--cpus LIST`), one vCPU on each.
    Cpus(Vec<u32>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub want: Want,
    pub memory: u64,
    pub overcommit: bool,
}

/// What one running isle holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holding {
    pub label: String,
    /// The CPUs its vCPUs run on (shared or not).
    pub cpus: Vec<u32>,
    /// Every CPU it keeps from others (its vCPUs' and their idle siblings).
    pub reserved: Vec<u32>,
    pub node: Option<u32>,
    pub memory: u64,
}

/// What an isle gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// One CPU per vCPU.
    pub cpus: Vec<u32>,
    /// Every CPU kept from others (`cpus` plus idle siblings).
    pub reserved: Vec<u32>,
    /// The node its cores and memory are on, if one.
    pub node: Option<u32>,
    /// Where its offload service threads run: a Linux CPU.
    pub service_cpu: Option<u32>,
    /// It shares cores with others (`--overcommit`).
    pub shared: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Invalid(String),
}

/// The CPUs Linux keeps: whole physical cores.
pub fn host_cpus(topology: &Topology, config: &HostConfig) -> BTreeSet<u32> {
    let cores: BTreeSet<u32> = match &config.host_cpus {
        Some(cpus) => cpus
            .iter()
            .filter_map(|id| topology.cpu(*id))
            .map(|cpu| cpu.core)
            .collect(),
        None => {
            let mut first_per_node = BTreeMap::new();
            for (core, node) in topology.cores() {
                first_per_node.entry(node).or_insert(core);
            }
            first_per_node.into_values().collect()
        }
    };
    cores
        .iter()
        .flat_map(|core| topology.threads_of(*core))
        .collect()
}

fn describe_holders(held: &[Holding]) -> String {
    if held.is_empty() {
        return "nothing else runs".into();
    }
    let parts: Vec<String> = held
        .iter()
        .map(|holding| format!("{} holds {}", holding.label, format_list(&holding.reserved)))
        .collect();
    parts.join("; ")
}

/// Decides what `request` gets, or why it can't have it now.
pub fn allocate(
    topology: &Topology,
    config: &HostConfig,
    held: &[Holding],
    request: &Request,
) -> Result<Grant, Refusal> {
    let linux = host_cpus(topology, config);
    let taken: BTreeSet<u32> = held
        .iter()
        .flat_map(|h| h.reserved.iter().copied())
        .collect();
    let service_on = |node: Option<u32>| {
        let on_node = linux
            .iter()
            .copied()
            .find(|id| node.is_none_or(|node| topology.cpu(*id).is_some_and(|c| c.node == node)));
        on_node.or_else(|| linux.iter().next().copied())
    };
    // Memory left on each node, and in all.
    let mut memory_left: BTreeMap<u32, i128> = topology
        .nodes
        .iter()
        .map(|node| (node.id, i128::from(node.memory)))
        .collect();
    let mut spread_memory: i128 = 0;
    for holding in held {
        match holding.node {
            Some(node) => *memory_left.entry(node).or_default() -= i128::from(holding.memory),
            None => spread_memory += i128::from(holding.memory),
        }
    }
    let total_left: i128 = memory_left.values().sum::<i128>() - spread_memory;
    if i128::from(request.memory) > total_left && !request.overcommit {
        return Err(Refusal::Busy(format!(
            "{} MiB of memory asked, {} MiB left for isles ({}); add --wait to queue or --overcommit to share",
            request.memory >> 20,
            total_left.max(0) >> 20,
            describe_holders(held)
        )));
    }

    let count = match &request.want {
        Want::Cpus(cpus) => {
            let mut seen = BTreeSet::new();
            for id in cpus {
                if topology.cpu(*id).is_none() {
                    return Err(Refusal::Invalid(format!(
                        "--cpus: CPU {id} doesn't exist here (online: {})",
                        format_list(&topology.cpus.iter().map(|c| c.id).collect::<Vec<_>>())
                    )));
                }
                if !seen.insert(*id) {
                    return Err(Refusal::Invalid(format!(
                        "--cpus: CPU {id} is listed twice"
                    )));
                }
                if linux.contains(id) && topology.cores().len() > 1 {
                    return Err(Refusal::Invalid(format!(
                        "--cpus: CPU {id} belongs to Linux (host CPUs {})",
                        format_list(&linux.iter().copied().collect::<Vec<_>>())
                    )));
                }
                if taken.contains(id) && !request.overcommit {
                    return Err(Refusal::Busy(format!(
                        "--cpus: CPU {id} is taken ({}); add --wait to queue or --overcommit to share",
                        describe_holders(held)
                    )));
                }
            }
            let nodes: BTreeSet<u32> = cpus
                .iter()
                .filter_map(|id| topology.cpu(*id).map(|cpu| cpu.node))
                .collect();
            let node = (nodes.len() == 1)
                .then(|| nodes.into_iter().next())
                .flatten();
            let shared = cpus.iter().any(|id| taken.contains(id));
            return Ok(Grant {
                cpus: cpus.clone(),
                reserved: if shared { Vec::new() } else { cpus.clone() },
                node,
                service_cpu: service_on(node),
                shared,
            });
        }
        Want::Cores(0) => {
            return Err(Refusal::Invalid(
                "-c 0: an isle needs at least one core".into(),
            ))
        }
        Want::Cores(count) => *count as usize,
    };

    // Units to hand out: whole cores, or single threads when SMT is shared.
    let units: Vec<Unit> = if config.share_smt {
        let mut threads: Vec<&crate::topology::Cpu> = topology.cpus.iter().collect();
        threads.sort_by_key(|cpu| cpu.id);
        threads.iter().map(|cpu| (vec![cpu.id], cpu.node)).collect()
    } else {
        topology
            .cores()
            .into_iter()
            .map(|(core, node)| (topology.threads_of(core), node))
            .collect()
    };
    let isle_units: Vec<&Unit> = units
        .iter()
        .filter(|(threads, _)| !threads.iter().any(|id| linux.contains(id)))
        .collect();
    let free: Vec<&Unit> = isle_units
        .iter()
        .copied()
        .filter(|(threads, _)| !threads.iter().any(|id| taken.contains(id)))
        .collect();
    let grant = |chosen: Vec<&Unit>, node: Option<u32>, shared: bool| Grant {
        cpus: chosen.iter().map(|(threads, _)| threads[0]).collect(),
        reserved: if shared {
            Vec::new()
        } else {
            chosen
                .iter()
                .flat_map(|(threads, _)| threads.clone())
                .collect()
        },
        node,
        service_cpu: service_on(node),
        shared,
    };

    // One node, best fit, with the memory there.
    let mut by_node: BTreeMap<u32, Vec<&Unit>> = BTreeMap::new();
    for unit in &free {
        by_node.entry(unit.1).or_default().push(unit);
    }
    let fitting = by_node
        .iter()
        .filter(|(node, units)| {
            units.len() >= count
                && memory_left.get(node).copied().unwrap_or(0) - spread_memory
                    >= i128::from(request.memory)
        })
        .min_by_key(|(node, units)| (units.len(), **node));
    if let Some((node, units)) = fitting {
        return Ok(grant(units[..count].to_vec(), Some(*node), false));
    }
    // Across nodes, fullest first.
    if free.len() >= count {
        let mut nodes: Vec<(&u32, &Vec<&Unit>)> = by_node.iter().collect();
        nodes.sort_by_key(|(node, units)| (std::cmp::Reverse(units.len()), **node));
        let chosen: Vec<&Unit> = nodes
            .into_iter()
            .flat_map(|(_, units)| units.iter().copied())
            .take(count)
            .collect();
        return Ok(grant(chosen, None, false));
    }
    if isle_units.is_empty() {
        // A one-core host: the isle shares Linux's core, as a process would.
        let linux_cpu = linux.iter().next().copied().unwrap_or(0);
        return Ok(Grant {
            cpus: vec![linux_cpu; count],
            reserved: Vec::new(),
            node: None,
            service_cpu: Some(linux_cpu),
            shared: true,
        });
    }
    if request.overcommit {
        // The least-loaded cores first, the isles' own before Linux's at
        // equal load (sharing is what was asked for), round robin.
        let mut load: BTreeMap<u32, usize> = BTreeMap::new();
        for id in held.iter().flat_map(|holding| holding.cpus.iter()) {
            *load.entry(*id).or_default() += 1;
        }
        let unit_load = |threads: &[u32]| {
            threads
                .iter()
                .map(|id| load.get(id).copied().unwrap_or(0))
                .sum::<usize>()
        };
        let mut pool: Vec<&Unit> = units.iter().collect();
        pool.sort_by_key(|(threads, _)| {
            let is_linux = threads.iter().any(|id| linux.contains(id));
            (unit_load(threads), is_linux, threads[0])
        });
        let cpus = (0..count)
            .map(|index| pool[index % pool.len()].0[0])
            .collect();
        return Ok(Grant {
            cpus,
            reserved: Vec::new(),
            node: None,
            service_cpu: service_on(None),
            shared: true,
        });
    }
    Err(Refusal::Busy(format!(
        "-c {count}: {} of the {} cores for isles are free ({}; Linux keeps {}); add --wait to queue or --overcommit to share",
        free.len(),
        isle_units.len(),
        describe_holders(held),
        format_list(&linux.iter().copied().collect::<Vec<_>>())
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn machines() -> Vec<(&'static str, Topology)> {
        vec![
            ("2-core VM", Topology::synthetic(1, 2, 1, 24 * GIB)),
            ("Xeon Phi SNC-4", Topology::synthetic(4, 18, 4, 24 * GIB)),
            ("8-socket", Topology::synthetic(8, 24, 1, 256 * GIB)),
            ("2-socket SMT", Topology::synthetic(2, 16, 2, 128 * GIB)),
        ]
    }

    fn cores(count: u32) -> Request {
        Request {
            want: Want::Cores(count),
            memory: GIB,
            overcommit: false,
        }
    }

    fn hold(label: &str, grant: &Grant, memory: u64) -> Holding {
        Holding {
            label: label.into(),
            cpus: grant.cpus.clone(),
            reserved: grant.reserved.clone(),
            node: grant.node,
            memory,
        }
    }

    #[test]
    fn linux_keeps_the_first_core_of_every_node() {
        let phi = Topology::synthetic(4, 18, 4, 24 * GIB);
        let linux = host_cpus(&phi, &HostConfig::default());
        // Cores 0, 18, 36, 54 with their four threads each.
        assert_eq!(linux.len(), 16);
        for core in [0, 18, 36, 54] {
            for thread in phi.threads_of(core) {
                assert!(linux.contains(&thread));
            }
        }
        let custom = HostConfig {
            host_cpus: Some(vec![5]),
            ..HostConfig::default()
        };
        assert_eq!(
            host_cpus(&phi, &custom),
            phi.threads_of(5).into_iter().collect()
        );
    }

    #[test]
    fn isles_get_whole_cores_on_one_node_when_they_fit() {
        let smt = Topology::synthetic(2, 16, 2, 128 * GIB);
        let config = HostConfig::default();
        let first = allocate(&smt, &config, &[], &cores(8)).unwrap();
        let node = first.node.unwrap();
        assert_eq!(first.cpus.len(), 8);
        assert_eq!(first.reserved.len(), 16, "siblings are kept idle");
        for cpu in &first.cpus {
            assert_eq!(smt.cpu(*cpu).unwrap().node, node);
            let core = smt.cpu(*cpu).unwrap().core;
            assert_eq!(smt.threads_of(core)[0], *cpu, "first thread of its core");
        }
        // Best fit: the second 8 go to the same node (7 left there fits).
        let second = allocate(&smt, &config, &[hold("isle 1", &first, GIB)], &cores(7)).unwrap();
        assert_eq!(second.node, Some(node));
        // 16 cores can't sit on one node (15 each): they spread.
        let spread = allocate(&smt, &config, &[], &cores(16)).unwrap();
        assert_eq!(spread.node, None);
        assert_eq!(spread.cpus.len(), 16);
        // SMT sharing hands out threads instead.
        let sharing = HostConfig {
            share_smt: true,
            ..HostConfig::default()
        };
        let threads = allocate(&smt, &sharing, &[], &cores(2)).unwrap();
        assert_eq!(threads.reserved.len(), 2);
    }

    #[test]
    fn refusals_name_who_holds_what() {
        let vm = Topology::synthetic(1, 2, 1, 24 * GIB);
        let config = HostConfig::default();
        let first = allocate(&vm, &config, &[], &cores(1)).unwrap();
        assert_eq!(first.cpus, [1]);
        assert_eq!(first.service_cpu, Some(0));
        let held = [hold("isle 1 (./solver)", &first, GIB)];
        let refused = allocate(&vm, &config, &held, &cores(1)).unwrap_err();
        let message = refused.to_string();
        assert!(message.contains("isle 1 (./solver) holds 1"), "{message}");
        assert!(message.contains("--overcommit"), "{message}");
        let shared = allocate(
            &vm,
            &config,
            &held,
            &Request {
                overcommit: true,
                ..cores(2)
            },
        )
        .unwrap();
        assert!(shared.shared);
        // Least loaded first: Linux's idle core, then isle 1's.
        assert_eq!(shared.cpus, [0, 1]);
        let alone = allocate(
            &vm,
            &config,
            &[],
            &Request {
                overcommit: true,
                ..cores(2)
            },
        )
        .unwrap();
        assert_eq!(
            alone.cpus,
            [1, 0],
            "the isles' own core first at equal load"
        );
        let too_much = Request {
            memory: 100 * GIB,
            ..cores(1)
        };
        assert!(allocate(&vm, &config, &[], &too_much)
            .unwrap_err()
            .to_string()
            .contains("MiB of memory asked"));
        let linux_cpu = Request {
            want: Want::Cpus(vec![0]),
            ..cores(1)
        };
        assert!(matches!(
            allocate(&vm, &config, &[], &linux_cpu),
            Err(Refusal::Invalid(_))
        ));
    }

    /// Random runs and exits on every machine: no CPU is ever reserved by
    /// two isles, none goes to an isle from Linux, and all come back.
    #[test]
    fn random_runs_and_exits_never_share_or_leak_a_core() {
        let config = HostConfig::default();
        for (name, machine) in machines() {
            let linux = host_cpus(&machine, &config);
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let mut running: Vec<Holding> = Vec::new();
            for step in 0..2000 {
                if !running.is_empty() && next() % 3 == 0 {
                    let index = (next() % running.len() as u64) as usize;
                    running.swap_remove(index);
                    continue;
                }
                let count = 1 + (next() % 12) as u32;
                if let Ok(grant) = allocate(&machine, &config, &running, &cores(count)) {
                    assert_eq!(grant.cpus.len(), count as usize, "{name}");
                    if grant.shared {
                        continue;
                    }
                    for cpu in &grant.reserved {
                        assert!(!linux.contains(cpu), "{name}: Linux's CPU {cpu} handed out");
                        for other in &running {
                            assert!(
                                !other.reserved.contains(cpu),
                                "{name} step {step}: CPU {cpu} handed out twice"
                            );
                        }
                    }
                    running.push(hold(&format!("isle {step}"), &grant, GIB));
                }
            }
            running.clear();
            // Everything back: the largest request fits again.
            let all = machine.cores().len() - machine.nodes.len();
            let whole = allocate(&machine, &config, &running, &cores(all as u32)).unwrap();
            assert_eq!(whole.cpus.len(), all, "{name}");
        }
    }
}
