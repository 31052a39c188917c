//! Where tasks go and which ones stop (reference §2, "Pipeline" and
//! "Strategies").
//!
//! Inferred choices: tasks are placed one at a time and the ranking is redone
//! after each reservation; several strategy rules rank lexicographically
//! (the first ranks, later ones break its ties, a random pick breaks what is
//! left); one failure is reported per unplaced task. The "closest matching"
//! instance named in a failure is the one that passed the most checks, taken
//! in this order: memberOf, required attributes, distinctInstance, agent,
//! CPU, memory, TCP ports, UDP ports — the rules the caller chose first, so
//! that the reason speaks of the instance they meant (a memberOf target short
//! of memory reports `RESOURCE:MEMORY`, not a memberOf miss elsewhere).
//! Spread counts the group's tasks on the ACTIVE instances; an instance
//! without the spread attribute is a bucket of its own.

use std::collections::BTreeMap;

use rand::Rng;

use super::demand::TaskDemand;
use super::rules::{BinpackField, Constraint, SpreadField, Strategy};
use super::{Instance, InstanceStatus, Resources, RunningTask};

/// The outcome of [`place`]: `placed.len() + failures.len()` is the count
/// asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// The instance id of each placed task, in placement order.
    pub placed: Vec<String>,
    pub failures: Vec<Failure>,
}

/// One task that could not be placed (RunTask `failures[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The closest matching instance, when there was any ACTIVE one.
    pub instance: Option<String>,
    pub reason: FailureReason,
}

/// ECS's failure reasons for placement, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureReason {
    /// No ACTIVE instance at all. RunTask answers this with
    /// `InvalidParameterException` (the text of [`Self::as_str`]) rather
    /// than a failure; a service records its "unable to place" event.
    NoContainerInstances,
    MemberOf,
    Attribute,
    DistinctInstance,
    Agent,
    Cpu,
    Memory,
    Ports,
    PortsUdp,
}

impl FailureReason {
    /// The wire text (`failures[].reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoContainerInstances => "No Container Instances were found in your cluster.",
            Self::MemberOf => "MemberOf placement constraint unsatisfied",
            Self::Attribute => "ATTRIBUTE",
            Self::DistinctInstance => "DistinctInstance placement constraint unsatisfied",
            Self::Agent => "AGENT",
            Self::Cpu => "RESOURCE:CPU",
            Self::Memory => "RESOURCE:MEMORY",
            Self::Ports => "RESOURCE:PORTS",
            Self::PortsUdp => "RESOURCE:PORTS_UDP",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An instance being filled: its tasks grow as placements are made, so
/// `task:group`, distinctInstance and spread see them.
struct Slot {
    instance: Instance,
    free: Resources,
}

fn slots(instances: &[Instance]) -> Vec<Slot> {
    let mut slots: Vec<Slot> = instances
        .iter()
        .map(|i| Slot {
            free: i.remaining(),
            instance: i.clone(),
        })
        .collect();
    // A fixed order keeps a seeded run reproducible whatever the input order.
    slots.sort_by(|a, b| a.instance.id.cmp(&b.instance.id));
    slots
}

/// Places `count` tasks of `demand`: candidates are ACTIVE, connected
/// instances with room and the required attributes that satisfy every
/// constraint; `strategies` rank them (empty: uniform random).
pub fn place<R: Rng + ?Sized>(
    instances: &[Instance],
    demand: &TaskDemand,
    count: usize,
    strategies: &[Strategy],
    constraints: &[Constraint],
    rng: &mut R,
) -> Placement {
    let mut slots = slots(instances);
    let mut placement = Placement::default();
    for _ in 0..count {
        let mut candidates = Vec::new();
        // The furthest failed check; among equals, the most memory then CPU
        // free, then the first id.
        let mut closest: Option<((FailureReason, u32, u32), &str)> = None;
        for (i, slot) in slots.iter().enumerate() {
            if slot.instance.status != InstanceStatus::Active {
                continue;
            }
            match check(slot, demand, constraints) {
                Ok(()) => candidates.push(i),
                Err(reason) => {
                    let rank = (reason, slot.free.memory_mib, slot.free.cpu);
                    if closest.is_none_or(|(best, _)| rank > best) {
                        closest = Some((rank, &slot.instance.id));
                    }
                }
            }
        }
        let failure = closest.map_or(
            Failure {
                instance: None,
                reason: FailureReason::NoContainerInstances,
            },
            |((reason, _, _), id)| Failure {
                instance: Some(id.to_owned()),
                reason,
            },
        );
        let chosen = choose(&slots, &candidates, &demand.group, strategies, rng, false);
        let Some(slot) = chosen.and_then(|i| slots.get_mut(i)) else {
            // Nothing changed, so every remaining task fails the same way.
            let left = count - placement.placed.len();
            placement.failures = vec![failure; left];
            return placement;
        };
        reserve(slot, demand);
        placement.placed.push(slot.instance.id.clone());
    }
    placement
}

/// The first check the instance fails, in the order of [`FailureReason`].
fn check(
    slot: &Slot,
    demand: &TaskDemand,
    constraints: &[Constraint],
) -> Result<(), FailureReason> {
    let instance = &slot.instance;
    let member = constraints.iter().all(|c| match c {
        Constraint::MemberOf(expression) => expression.evaluate(instance),
        Constraint::DistinctInstance => true,
    });
    if !member {
        return Err(FailureReason::MemberOf);
    }
    let attributes = demand.required_attributes.iter().all(|(name, wanted)| {
        match (instance.attributes.get(name), wanted) {
            (Some(have), Some(wanted)) => have == wanted,
            (Some(_), None) => true,
            (None, _) => false,
        }
    });
    if !attributes {
        return Err(FailureReason::Attribute);
    }
    let distinct = constraints
        .iter()
        .any(|c| matches!(c, Constraint::DistinctInstance));
    if distinct && instance.group_count(&demand.group) > 0 {
        return Err(FailureReason::DistinctInstance);
    }
    if !instance.agent_connected {
        return Err(FailureReason::Agent);
    }
    let need = &demand.resources;
    if slot.free.cpu < need.cpu {
        return Err(FailureReason::Cpu);
    }
    if slot.free.memory_mib < need.memory_mib {
        return Err(FailureReason::Memory);
    }
    if !slot.free.ports_tcp.is_disjoint(&need.ports_tcp) {
        return Err(FailureReason::Ports);
    }
    if !slot.free.ports_udp.is_disjoint(&need.ports_udp) {
        return Err(FailureReason::PortsUdp);
    }
    Ok(())
}

fn reserve(slot: &mut Slot, demand: &TaskDemand) {
    let need = &demand.resources;
    slot.free.cpu = slot.free.cpu.saturating_sub(need.cpu);
    slot.free.memory_mib = slot.free.memory_mib.saturating_sub(need.memory_mib);
    slot.free.ports_tcp.extend(&need.ports_tcp);
    slot.free.ports_udp.extend(&need.ports_udp);
    slot.instance.tasks.push(RunningTask {
        id: String::new(),
        group: demand.group.clone(),
        reserved: need.clone(),
    });
}

/// The group's task count per value of `attribute` over the ACTIVE slots:
/// tasks on a draining instance are leaving, so they do not hold their
/// zone's share.
fn buckets(slots: &[Slot], attribute: &str, group: &str) -> BTreeMap<Option<String>, u64> {
    let mut counts = BTreeMap::new();
    for slot in slots
        .iter()
        .filter(|s| s.instance.status == InstanceStatus::Active)
    {
        let key = slot.instance.attributes.get(attribute).cloned();
        *counts.entry(key).or_insert(0u64) += slot.instance.group_count(group) as u64;
    }
    counts
}

/// The best of `candidates` (indexes into `slots`) by the strategies, read
/// forwards to place and in `reverse` to pick where to stop a task; `None`
/// when there is no candidate.
fn choose<R: Rng + ?Sized>(
    slots: &[Slot],
    candidates: &[usize],
    group: &str,
    strategies: &[Strategy],
    rng: &mut R,
    reverse: bool,
) -> Option<usize> {
    let spread_buckets: Vec<Option<BTreeMap<Option<String>, u64>>> = strategies
        .iter()
        .map(|s| match s {
            Strategy::Spread(SpreadField::Attribute(name)) => Some(buckets(slots, name, group)),
            _ => None,
        })
        .collect();
    let mut best: Vec<usize> = Vec::new();
    let mut best_key: Option<Vec<u64>> = None;
    for &i in candidates {
        let Some(slot) = slots.get(i) else { continue };
        let key: Vec<u64> = strategies
            .iter()
            .zip(&spread_buckets)
            .map(|(strategy, buckets)| {
                let score = match strategy {
                    Strategy::Random => return rng.random(),
                    // Remaining after placing or after stopping: the demand
                    // is the same for every candidate, so what is free now
                    // orders them.
                    Strategy::Binpack(BinpackField::Cpu) => u64::from(slot.free.cpu),
                    Strategy::Binpack(BinpackField::Memory) => u64::from(slot.free.memory_mib),
                    Strategy::Spread(SpreadField::InstanceId) => {
                        slot.instance.group_count(group) as u64
                    }
                    Strategy::Spread(SpreadField::Attribute(name)) => {
                        let value = slot.instance.attributes.get(name).cloned();
                        buckets
                            .as_ref()
                            .and_then(|b| b.get(&value).copied())
                            .unwrap_or(0)
                    }
                };
                // Scale-in wants the most loaded bucket and, for binpack,
                // the instance that will have the most free.
                if reverse { u64::MAX - score } else { score }
            })
            .collect();
        match best_key.as_ref().map(|b| key.cmp(b)) {
            None | Some(std::cmp::Ordering::Less) => {
                best_key = Some(key);
                best = vec![i];
            }
            Some(std::cmp::Ordering::Equal) => best.push(i),
            Some(std::cmp::Ordering::Greater) => {}
        }
    }
    if best.is_empty() {
        return None;
    }
    best.get(rng.random_range(0..best.len())).copied()
}

/// Which tasks of `group` to stop to shrink it by `count`, the strategies
/// read in reverse (reference §2): binpack stops where the most would then
/// be free, spread takes from the most loaded bucket, ties go at random.
/// Tasks on instances that are not ACTIVE (draining) go first (inferred).
pub fn scale_in<R: Rng + ?Sized>(
    instances: &[Instance],
    group: &str,
    count: usize,
    strategies: &[Strategy],
    rng: &mut R,
) -> Vec<String> {
    let mut slots = slots(instances);
    let mut stopped = Vec::new();
    while stopped.len() < count {
        let holding = |active: bool| -> Vec<usize> {
            let matches = |s: &Slot| {
                s.instance.group_count(group) > 0
                    && (s.instance.status == InstanceStatus::Active) == active
            };
            (0..slots.len())
                .filter(|&i| slots.get(i).is_some_and(matches))
                .collect()
        };
        let mut candidates = holding(false);
        if candidates.is_empty() {
            candidates = holding(true);
        }
        let chosen = choose(&slots, &candidates, group, strategies, rng, true);
        let Some(slot) = chosen.and_then(|i| slots.get_mut(i)) else {
            break;
        };
        let Some(at) = slot.instance.tasks.iter().position(|t| t.group == group) else {
            break;
        };
        let task = slot.instance.tasks.remove(at);
        slot.free.cpu = slot.free.cpu.saturating_add(task.reserved.cpu);
        slot.free.memory_mib = slot
            .free
            .memory_mib
            .saturating_add(task.reserved.memory_mib);
        stopped.push(task.id);
    }
    stopped
}
