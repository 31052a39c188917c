//! The placement rules of reference §2, one test each.

use std::collections::{BTreeMap, BTreeSet};

use rand::SeedableRng;
use rand::rngs::StdRng;
use time::OffsetDateTime;

use super::*;

pub(super) fn instance(id: &str, cpu: u32, memory_mib: u32, zone: &str) -> Instance {
    Instance {
        id: id.into(),
        ec2_instance_id: Some(format!("i-{id}")),
        status: InstanceStatus::Active,
        agent_connected: true,
        agent_version: Some("1.20.0".into()),
        registered_at: OffsetDateTime::UNIX_EPOCH,
        registered: Resources {
            cpu,
            memory_mib,
            ports_tcp: BTreeSet::from([22]),
            ports_udp: BTreeSet::new(),
        },
        attributes: BTreeMap::from([("ecs.availability-zone".into(), zone.into())]),
        tasks: Vec::new(),
    }
}

pub(super) fn demand(cpu: u32, memory_mib: u32, group: &str) -> TaskDemand {
    TaskDemand {
        resources: Resources {
            cpu,
            memory_mib,
            ..Resources::default()
        },
        group: group.into(),
        required_attributes: BTreeMap::new(),
    }
}

fn task(id: &str, group: &str, memory_mib: u32) -> RunningTask {
    RunningTask {
        id: id.into(),
        group: group.into(),
        reserved: Resources {
            memory_mib,
            ..Resources::default()
        },
    }
}

fn run(
    instances: &[Instance],
    demand: &TaskDemand,
    count: usize,
    strategies: &[Strategy],
    constraints: &[Constraint],
) -> Placement {
    place(
        instances,
        demand,
        count,
        strategies,
        constraints,
        &mut StdRng::seed_from_u64(7),
    )
}

fn failure(instance: &str, reason: FailureReason) -> Failure {
    Failure {
        instance: Some(instance.into()),
        reason,
    }
}

fn member_of(expression: &str) -> Constraint {
    match Expression::parse(expression) {
        Ok(e) => Constraint::MemberOf(e),
        Err(e) => panic!("{expression}: {e}"),
    }
}

fn count_by<'a>(ids: impl IntoIterator<Item = &'a String>) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(id.as_str()).or_insert(0) += 1;
    }
    counts
}

#[test]
fn binpack_memory_fills_the_fullest_instance_that_fits() {
    let instances = [
        instance("a", 4096, 4096, "z1"),
        instance("b", 4096, 1024, "z1"),
        instance("c", 4096, 512, "z1"),
    ];
    let binpack = [Strategy::Binpack(BinpackField::Memory)];
    let placement = run(&instances, &demand(0, 768, "g"), 2, &binpack, &[]);
    assert_eq!(placement.placed, ["b", "a"]);
    assert!(placement.failures.is_empty());
}

#[test]
fn binpack_cpu_packs_by_cpu() {
    let instances = [
        instance("a", 1024, 4096, "z1"),
        instance("b", 4096, 512, "z1"),
    ];
    let binpack = [Strategy::Binpack(BinpackField::Cpu)];
    let placement = run(&instances, &demand(256, 128, "g"), 3, &binpack, &[]);
    assert_eq!(placement.placed, ["a", "a", "a"]);
}

#[test]
fn spread_over_the_zone_attribute_balances() {
    let instances: Vec<Instance> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .zip(["z1", "z1", "z2", "z2", "z3", "z3"])
        .map(|(id, zone)| instance(id, 4096, 4096, zone))
        .collect();
    let placement = run(
        &instances,
        &demand(128, 128, "service:web"),
        6,
        &Strategy::service_default(),
        &[],
    );
    // Default service strategy: even across zones, then across instances.
    assert_eq!(count_by(&placement.placed).len(), 6);
    let spread = [Strategy::Spread(SpreadField::Attribute(
        "ecs.availability-zone".into(),
    ))];
    let placement = run(
        &instances,
        &demand(128, 128, "service:web"),
        3,
        &spread,
        &[],
    );
    let zones: BTreeSet<&str> = placement
        .placed
        .iter()
        .filter_map(|id| instances.iter().find(|i| &i.id == id))
        .filter_map(|i| {
            i.attributes
                .get("ecs.availability-zone")
                .map(String::as_str)
        })
        .collect();
    assert_eq!(zones.len(), 3);
}

#[test]
fn spread_counts_tasks_already_running() {
    let mut a = instance("a", 4096, 4096, "z1");
    a.tasks.push(task("t1", "service:web", 128));
    a.tasks.push(task("t2", "service:other", 128));
    let b = instance("b", 4096, 4096, "z2");
    let spread = [Strategy::Spread(SpreadField::InstanceId)];
    let placement = run(&[a, b], &demand(0, 128, "service:web"), 1, &spread, &[]);
    assert_eq!(placement.placed, ["b"]);
}

#[test]
fn spread_then_binpack_packs_within_zones() {
    let instances = [
        instance("a", 4096, 4096, "z1"),
        instance("b", 4096, 1024, "z1"),
        instance("c", 4096, 2048, "z2"),
        instance("d", 4096, 8192, "z2"),
    ];
    let rules = [
        Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
        Strategy::Binpack(BinpackField::Memory),
    ];
    let placement = run(&instances, &demand(0, 256, "g"), 2, &rules, &[]);
    let mut placed = placement.placed.clone();
    placed.sort();
    assert_eq!(placed, ["b", "c"]);
}

#[test]
fn distinct_instance_never_co_locates() {
    let mut a = instance("a", 4096, 4096, "z1");
    a.tasks.push(task("t0", "family:web", 128));
    let instances = [
        a,
        instance("b", 4096, 4096, "z1"),
        instance("c", 4096, 4096, "z1"),
    ];
    let placement = run(
        &instances,
        &demand(0, 128, "family:web"),
        3,
        &[Strategy::Random],
        &[Constraint::DistinctInstance],
    );
    let mut placed = placement.placed.clone();
    placed.sort();
    assert_eq!(placed, ["b", "c"]);
    assert_eq!(placement.failures.len(), 1);
    assert_eq!(
        placement.failures.first().map(|f| f.reason),
        Some(FailureReason::DistinctInstance)
    );
}

#[test]
fn member_of_places_only_there() {
    let mut instances = [
        instance("a", 4096, 4096, "z1"),
        instance("b", 4096, 4096, "z1"),
        instance("c", 4096, 4096, "z2"),
    ];
    for (i, kind) in instances
        .iter_mut()
        .zip(["m5.large", "t2.micro", "c5.xlarge"])
    {
        i.attributes.insert("ecs.instance-type".into(), kind.into());
    }
    let only_t2 = [member_of("attribute:ecs.instance-type =~ t2.*")];
    let placement = run(&instances, &demand(0, 128, "g"), 3, &[], &only_t2);
    assert_eq!(placement.placed, ["b", "b", "b"]);
    let nowhere = [member_of("attribute:ecs.instance-type == p3.2xlarge")];
    let placement = run(&instances, &demand(0, 128, "g"), 1, &[], &nowhere);
    assert_eq!(
        placement.failures.first().map(|f| f.reason),
        Some(FailureReason::MemberOf)
    );
}

#[test]
fn task_group_affinity_and_anti_affinity() {
    let mut a = instance("a", 4096, 4096, "z1");
    a.tasks.push(task("db", "database", 128));
    let instances = [a, instance("b", 4096, 4096, "z1")];
    let near = [member_of("task:group == database")];
    assert_eq!(
        run(&instances, &demand(0, 1, "g"), 1, &[], &near).placed,
        ["a"]
    );
    let apart = [member_of("not(task:group == database)")];
    assert_eq!(
        run(&instances, &demand(0, 1, "g"), 1, &[], &apart).placed,
        ["b"]
    );
}

#[test]
fn a_task_that_fits_nowhere_fails_with_the_reason_of_the_closest_instance() {
    let instances = [
        instance("a", 1024, 2048, "z1"),
        instance("b", 2048, 1024, "z1"),
    ];
    let cpu = run(&instances, &demand(4096, 128, "g"), 2, &[], &[]);
    assert!(cpu.placed.is_empty());
    assert_eq!(cpu.failures, vec![failure("a", FailureReason::Cpu); 2]);
    let memory = run(&instances, &demand(512, 4096, "g"), 1, &[], &[]);
    assert_eq!(memory.failures, [failure("a", FailureReason::Memory)]);
}

#[test]
fn the_member_of_target_short_of_memory_is_the_closest_match() {
    let mut small = instance("a", 4096, 256, "z1");
    small.attributes.insert("role".into(), "db".into());
    let instances = [small, instance("b", 4096, 8192, "z1")];
    let placement = run(
        &instances,
        &demand(0, 1024, "g"),
        1,
        &[],
        &[member_of("attribute:role == db")],
    );
    assert_eq!(placement.failures, [failure("a", FailureReason::Memory)]);
}

#[test]
fn a_port_conflict_is_resource_ports() {
    let instances = [instance("a", 4096, 4096, "z1")];
    let mut web = demand(0, 128, "g");
    web.resources.ports_tcp.insert(8080);
    let placement = run(&instances, &web, 2, &[], &[]);
    assert_eq!(placement.placed, ["a"]);
    assert_eq!(placement.failures, [failure("a", FailureReason::Ports)]);
    let mut ssh = demand(0, 128, "g");
    ssh.resources.ports_tcp.insert(22);
    let placement = run(&instances, &ssh, 1, &[], &[]);
    assert_eq!(placement.failures, [failure("a", FailureReason::Ports)]);
    let mut dns = demand(0, 128, "g");
    dns.resources.ports_udp.insert(53);
    let placement = run(&instances, &dns, 2, &[], &[]);
    assert_eq!(placement.failures, [failure("a", FailureReason::PortsUdp)]);
}

#[test]
fn a_disconnected_agent_is_agent() {
    let mut a = instance("a", 4096, 4096, "z1");
    a.agent_connected = false;
    let placement = run(&[a.clone()], &demand(0, 128, "g"), 1, &[], &[]);
    assert_eq!(placement.failures, [failure("a", FailureReason::Agent)]);
    let placement = run(
        &[a, instance("b", 1, 1, "z1")],
        &demand(0, 128, "g"),
        1,
        &[],
        &[],
    );
    assert_eq!(placement.failures, [failure("b", FailureReason::Memory)]);
}

#[test]
fn a_missing_required_attribute_is_attribute() {
    let mut a = instance("a", 4096, 4096, "z1");
    a.attributes
        .insert("ecs.capability.efs".into(), String::new());
    let needs = |name: &str, value: Option<&str>| {
        demand(0, 128, "g").with_required_attributes([(name.to_owned(), value.map(str::to_owned))])
    };
    let ok = run(
        &[a.clone()],
        &needs("ecs.capability.efs", None),
        1,
        &[],
        &[],
    );
    assert_eq!(ok.placed, ["a"]);
    let wrong_value = run(
        &[a.clone()],
        &needs("ecs.availability-zone", Some("z2")),
        1,
        &[],
        &[],
    );
    assert_eq!(
        wrong_value.failures,
        [failure("a", FailureReason::Attribute)]
    );
    let absent = run(&[a], &needs("ecs.capability.gpu", None), 1, &[], &[]);
    assert_eq!(absent.failures, [failure("a", FailureReason::Attribute)]);
}

#[test]
fn draining_gets_nothing() {
    let mut big = instance("a", 8192, 8192, "z1");
    big.status = InstanceStatus::Draining;
    let placement = run(
        &[big.clone(), instance("b", 1024, 1024, "z1")],
        &demand(0, 512, "g"),
        3,
        &[Strategy::Binpack(BinpackField::Memory)],
        &[],
    );
    assert_eq!(placement.placed, ["b", "b"]);
    assert_eq!(placement.failures, [failure("b", FailureReason::Memory)]);
    let placement = run(&[big], &demand(0, 512, "g"), 1, &[], &[]);
    assert_eq!(
        placement.failures,
        [Failure {
            instance: None,
            reason: FailureReason::NoContainerInstances
        }]
    );
}

#[test]
fn scale_in_spread_takes_from_the_most_loaded() {
    let mut a = instance("a", 4096, 4096, "z1");
    let mut b = instance("b", 4096, 4096, "z2");
    for n in 0..3 {
        a.tasks.push(task(&format!("a{n}"), "service:web", 128));
    }
    b.tasks.push(task("b0", "service:web", 128));
    b.tasks.push(task("x", "service:other", 128));
    let stop = scale_in(
        &[a, b],
        "service:web",
        3,
        &Strategy::service_default(),
        &mut StdRng::seed_from_u64(1),
    );
    assert_eq!(stop.len(), 3);
    assert_eq!(stop.iter().filter(|t| t.starts_with('a')).count(), 2);
    assert!(!stop.contains(&"x".to_owned()));
}

#[test]
fn scale_in_binpack_frees_the_emptiest() {
    let mut a = instance("a", 4096, 4096, "z1");
    let mut b = instance("b", 4096, 4096, "z1");
    a.tasks.push(task("a0", "g", 128));
    b.tasks.push(task("b0", "g", 128));
    b.tasks.push(task("big", "other", 3000));
    let stop = scale_in(
        &[a, b],
        "g",
        1,
        &[Strategy::Binpack(BinpackField::Memory)],
        &mut StdRng::seed_from_u64(1),
    );
    assert_eq!(stop, ["a0"]);
}

#[test]
fn scale_in_stops_on_draining_instances_first() {
    let mut a = instance("a", 4096, 4096, "z1");
    let mut b = instance("b", 4096, 4096, "z1");
    a.tasks.push(task("a0", "g", 128));
    a.tasks.push(task("a1", "g", 128));
    b.tasks.push(task("b0", "g", 128));
    b.status = InstanceStatus::Draining;
    let stop = scale_in(
        &[a, b],
        "g",
        5,
        &[Strategy::Spread(SpreadField::InstanceId)],
        &mut StdRng::seed_from_u64(1),
    );
    assert_eq!(stop.first().map(String::as_str), Some("b0"));
    assert_eq!(stop.len(), 3);
}

#[test]
fn spread_does_not_count_tasks_on_draining_instances() {
    let mut leaving = instance("a", 4096, 4096, "z1");
    leaving.status = InstanceStatus::Draining;
    leaving.tasks.push(task("t0", "service:web", 128));
    leaving.tasks.push(task("t1", "service:web", 128));
    let mut z2 = instance("c", 4096, 4096, "z2");
    z2.tasks.push(task("t2", "service:web", 128));
    let instances = [leaving, instance("b", 4096, 4096, "z1"), z2];
    let zones = [Strategy::Spread(SpreadField::Attribute(
        "ecs.availability-zone".into(),
    ))];
    let placement = run(&instances, &demand(0, 128, "service:web"), 1, &zones, &[]);
    assert_eq!(placement.placed, ["b"]);
}
