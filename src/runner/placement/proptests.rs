//! Property tests of `place`, `scale_in` and the query parser over random
//! clusters: whatever the rules, no instance is over-committed, constraints
//! hold, every task is accounted for, and a seed fixes the outcome.

use std::collections::{BTreeMap, BTreeSet};

use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use proptest::sample::select;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::Strategy as Rule;
use super::tests::{demand, instance};
use super::{
    BinpackField, Constraint, Expression, FailureReason, Instance, InstanceStatus, Resources,
    RunningTask, SpreadField, TaskDemand, place, scale_in,
};

const ZONES: [&str; 3] = ["z0", "z1", "z2"];

fn running_task() -> impl Strategy<Value = RunningTask> {
    (
        select(vec!["g", "h"]),
        0u32..512,
        0u32..512,
        btree_set(select(vec![80u16, 8080]), 0..2),
    )
        .prop_map(|(group, cpu, memory_mib, ports_tcp)| RunningTask {
            id: String::new(),
            group: group.into(),
            reserved: Resources {
                cpu,
                memory_mib,
                ports_tcp,
                ports_udp: BTreeSet::new(),
            },
        })
}

fn an_instance() -> impl Strategy<Value = Instance> {
    (
        0u32..4096,
        0u32..4096,
        select(ZONES.to_vec()),
        prop_oneof![6 => Just(InstanceStatus::Active), 1 => Just(InstanceStatus::Draining)],
        prop::bool::weighted(0.9),
        vec(running_task(), 0..3),
        btree_set(select(vec![22u16, 80, 443]), 0..2),
    )
        .prop_map(|(cpu, memory, zone, status, connected, tasks, ports)| {
            let mut i = instance("", cpu, memory, zone);
            i.status = status;
            i.agent_connected = connected;
            i.tasks = tasks;
            i.registered.ports_tcp = ports;
            i
        })
}

/// Up to 8 instances with distinct ids.
fn cluster() -> impl Strategy<Value = Vec<Instance>> {
    vec(an_instance(), 0..8).prop_map(|mut instances| {
        for (n, i) in instances.iter_mut().enumerate() {
            i.id = format!("i{n}");
        }
        instances
    })
}

fn a_demand() -> impl Strategy<Value = TaskDemand> {
    (
        0u32..1024,
        0u32..1024,
        select(vec!["g", "h"]),
        btree_set(select(vec![80u16, 8080]), 0..2),
        btree_set(select(vec![53u16]), 0..2),
    )
        .prop_map(|(cpu, memory, group, tcp, udp)| {
            let mut d = demand(cpu, memory, group);
            d.resources.ports_tcp = tcp;
            d.resources.ports_udp = udp;
            d
        })
}

fn strategies() -> impl Strategy<Value = Vec<Rule>> {
    vec(
        select(vec![
            Rule::Random,
            Rule::Spread(SpreadField::InstanceId),
            Rule::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
            Rule::Binpack(BinpackField::Cpu),
            Rule::Binpack(BinpackField::Memory),
        ]),
        0..3,
    )
}

/// A memberOf expression over attributes, which placement does not change.
fn member_of() -> impl Strategy<Value = Option<String>> {
    prop::option::of(select(vec![
        "attribute:ecs.availability-zone == z0".to_owned(),
        "attribute:ecs.availability-zone in [z1, z2]".to_owned(),
        "not(attribute:ecs.availability-zone =~ z[01])".to_owned(),
    ]))
}

fn constraints(distinct: bool, member: &Option<String>) -> Vec<Constraint> {
    let mut out = Vec::new();
    if distinct {
        out.push(Constraint::DistinctInstance);
    }
    if let Some(Ok(e)) = member.as_deref().map(Expression::parse) {
        out.push(Constraint::MemberOf(e));
    }
    out
}

fn seeded(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn places_within_every_rule(
        instances in cluster(),
        demand in a_demand(),
        count in 0usize..12,
        strategies in strategies(),
        distinct in any::<bool>(),
        member in member_of(),
        seed in any::<u64>(),
    ) {
        let constraints = constraints(distinct, &member);
        let placement = place(&instances, &demand, count, &strategies, &constraints, &mut seeded(seed));
        prop_assert_eq!(placement.placed.len() + placement.failures.len(), count);
        let mut per_instance: BTreeMap<&str, u32> = BTreeMap::new();
        for id in &placement.placed {
            *per_instance.entry(id.as_str()).or_insert(0) += 1;
        }
        for (id, &n) in &per_instance {
            let Some(i) = instances.iter().find(|i| i.id == *id) else {
                return Err(TestCaseError::fail(format!("placed on unknown {id}")));
            };
            prop_assert_eq!(i.status, InstanceStatus::Active);
            prop_assert!(i.agent_connected);
            let free = i.remaining();
            let need = &demand.resources;
            prop_assert!(u64::from(n) * u64::from(need.cpu) <= u64::from(free.cpu));
            prop_assert!(u64::from(n) * u64::from(need.memory_mib) <= u64::from(free.memory_mib));
            if !need.ports_tcp.is_empty() || !need.ports_udp.is_empty() {
                prop_assert_eq!(n, 1, "a static port is held once");
            }
            prop_assert!(free.ports_tcp.is_disjoint(&need.ports_tcp));
            prop_assert!(free.ports_udp.is_disjoint(&need.ports_udp));
            if distinct {
                prop_assert_eq!(n, 1);
                prop_assert_eq!(i.group_count(&demand.group), 0);
            }
            for c in &constraints {
                if let Constraint::MemberOf(e) = c {
                    prop_assert!(e.evaluate(i));
                }
            }
        }
        // Failures come only once nothing fits, so they trail the placements.
        let reasons: BTreeSet<FailureReason> = placement.failures.iter().map(|f| f.reason).collect();
        prop_assert!(reasons.len() <= 1);
        let any_active = instances.iter().any(|i| i.status == InstanceStatus::Active);
        for f in &placement.failures {
            prop_assert_eq!(f.instance.is_some(), any_active);
        }
    }

    #[test]
    fn a_seed_fixes_the_outcome_whatever_the_input_order(
        instances in cluster(),
        demand in a_demand(),
        count in 0usize..12,
        strategies in strategies(),
        seed in any::<u64>(),
    ) {
        let first = place(&instances, &demand, count, &strategies, &[], &mut seeded(seed));
        let again = place(&instances, &demand, count, &strategies, &[], &mut seeded(seed));
        prop_assert_eq!(&first, &again);
        let mut reversed = instances.clone();
        reversed.reverse();
        let reordered = place(&reversed, &demand, count, &strategies, &[], &mut seeded(seed));
        prop_assert_eq!(&first, &reordered);
    }

    #[test]
    fn spread_with_ample_room_differs_by_at_most_one(
        zones in vec(select(ZONES.to_vec()), 1..8),
        count in 0usize..30,
        by_zone in any::<bool>(),
        then in prop::option::of(select(vec![
            Rule::Random,
            Rule::Binpack(BinpackField::Memory),
        ])),
        seed in any::<u64>(),
    ) {
        let instances: Vec<Instance> = zones
            .iter()
            .enumerate()
            .map(|(n, zone)| instance(&format!("i{n}"), 1 << 20, 1 << 20, zone))
            .collect();
        let field = if by_zone {
            SpreadField::Attribute("ecs.availability-zone".into())
        } else {
            SpreadField::InstanceId
        };
        let mut rules = vec![Rule::Spread(field)];
        rules.extend(then);
        let placement = place(&instances, &demand(1, 1, "service:s"), count, &rules, &[], &mut seeded(seed));
        prop_assert_eq!(placement.placed.len(), count);
        let bucket_of = |id: &String| -> String {
            if by_zone {
                instances
                    .iter()
                    .find(|i| &i.id == id)
                    .and_then(|i| i.attributes.get("ecs.availability-zone").cloned())
                    .unwrap_or_default()
            } else {
                id.clone()
            }
        };
        let mut buckets: BTreeMap<String, usize> = instances
            .iter()
            .map(|i| (bucket_of(&i.id), 0))
            .collect();
        for id in &placement.placed {
            *buckets.entry(bucket_of(id)).or_insert(0) += 1;
        }
        let most = buckets.values().max().copied().unwrap_or(0);
        let least = buckets.values().min().copied().unwrap_or(0);
        prop_assert!(most - least <= 1, "{:?}", buckets);
    }

    #[test]
    fn scale_in_stops_tasks_of_the_group_only(
        mut instances in cluster(),
        count in 0usize..12,
        strategies in strategies(),
        seed in any::<u64>(),
    ) {
        for (n, task) in instances.iter_mut().flat_map(|i| i.tasks.iter_mut()).enumerate() {
            task.id = format!("t{n}");
        }
        let in_group: BTreeSet<String> = instances
            .iter()
            .flat_map(|i| &i.tasks)
            .filter(|t| t.group == "g")
            .map(|t| t.id.clone())
            .collect();
        let stop = scale_in(&instances, "g", count, &strategies, &mut seeded(seed));
        prop_assert_eq!(stop.len(), count.min(in_group.len()));
        let distinct: BTreeSet<String> = stop.iter().cloned().collect();
        prop_assert_eq!(distinct.len(), stop.len());
        prop_assert!(distinct.is_subset(&in_group));
    }

    #[test]
    fn the_query_parser_never_panics(text in "[ -~]{0,80}") {
        if let Ok(e) = Expression::parse(&text) {
            let _ = e.evaluate(&instance("i", 1, 1, "z0"));
        }
    }

    #[test]
    fn the_query_parser_never_panics_on_near_queries(
        parts in vec(select(vec![
            "attribute:a", "task:group", "runningTasksCount", "agentVersion", "registeredAt",
            "==", "!=", "<", ">=", "in", "!in", "=~", "exists", "!exists", "[", "]", ",", "(",
            ")", "!", "not", "and", "or", "&&", "||", "'x y'", "1.2.3", "2018-06-18", "t2.*", "3",
        ]), 0..12),
    ) {
        let text = parts.join(" ");
        if let Ok(e) = Expression::parse(&text) {
            let _ = e.evaluate(&instance("i", 1, 1, "z0"));
        }
    }
}
