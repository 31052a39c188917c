//! The service scheduler's decisions, pass by pass, without an engine or a store.

use std::collections::HashMap;

use serde_json::json;

use super::*;

const NOW: i64 = 1_000_000;

#[test]
fn circuit_breaker_threshold() {
    assert_eq!(failure_threshold(1), 3);
    assert_eq!(failure_threshold(2), 3);
    assert_eq!(failure_threshold(10), 5);
    assert_eq!(failure_threshold(11), 6);
    assert_eq!(failure_threshold(1000), 200);
}

fn deployment(id: &str, definition: &str) -> serde_json::Value {
    json!({
        "id": id, "status": "PRIMARY", "taskDefinition": definition, "desiredCount": 0,
        "pendingCount": 0, "runningCount": 0, "failedTasks": 0, "createdAt": 1.0,
        "updatedAt": 1.0, "launchType": "EC2", "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": "ECS deployment in progress."
    })
}

/// Service `web` wanting `desired` tasks, deployments newest (primary) first.
fn service(desired: i64, deployments: &[(&str, &str)]) -> ServiceRecord {
    let ds: Vec<serde_json::Value> = deployments.iter().map(|(i, d)| deployment(i, d)).collect();
    serde_json::from_value(json!({
        "service": {
            "serviceArn": "arn:s/web", "serviceName": "web", "clusterArn": "arn:c/default",
            "taskDefinition": deployments[0].1, "desiredCount": desired, "runningCount": 0,
            "pendingCount": 0, "status": "ACTIVE", "launchType": "EC2",
            "schedulingStrategy": "REPLICA",
            "deploymentConfiguration": {"maximumPercent": 200, "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": {"enable": true, "rollback": true}},
            "deployments": ds, "events": [], "createdAt": 1.0
        },
        "cluster": "default",
        "images": {deployments[0].0: {"app": "h/app@sha256:aa"}}
    }))
    .unwrap()
}

/// A task of deployment `deployment` in `status`, started long ago.
fn task(id: &str, deployment: &str, status: &str, health: &str) -> TaskRecord {
    serde_json::from_value(json!({
        "task": {
            "taskArn": format!("arn:t/{id}"), "taskDefinitionArn": "arn:td/web:1",
            "clusterArn": "arn:c/default", "containers": [], "lastStatus": status,
            "desiredStatus": "RUNNING", "healthStatus": health, "launchType": "EC2",
            "overrides": {}, "createdAt": 1.0, "startedAt": 1.0, "version": 1
        },
        "id": id, "cluster": "default", "family": "web", "networkMode": "bridge",
        "cpuUnits": null, "memoryMib": null, "plan": [], "service": "web",
        "deployment": deployment
    }))
    .unwrap()
}

fn pass(r: &mut ServiceRecord, live: &[TaskRecord], failures: &[(&str, i64)]) -> Decision {
    let live: Vec<&TaskRecord> = live.iter().collect();
    let failures: HashMap<String, i64> =
        failures.iter().map(|(d, n)| (d.to_string(), *n)).collect();
    let mut decision = Decision::default();
    let input = Pass {
        draining: &BTreeSet::new(),
        gone: &BTreeSet::new(),
        failures: &failures,
        scale_in: &[],
        balanced: false,
        serving: &BTreeSet::new(),
        failing: &BTreeSet::new(),
        now_ms: NOW,
    };
    plan(r, &live, &input, &mut decision);
    decision
}

fn pass_draining(r: &mut ServiceRecord, live: &[TaskRecord], draining: &[&str]) -> Decision {
    let live: Vec<&TaskRecord> = live.iter().collect();
    let draining: BTreeSet<String> = draining.iter().map(|s| s.to_string()).collect();
    let mut decision = Decision::default();
    let input = Pass {
        draining: &draining,
        gone: &BTreeSet::new(),
        failures: &HashMap::new(),
        scale_in: &[],
        balanced: false,
        serving: &BTreeSet::new(),
        failing: &BTreeSet::new(),
        now_ms: NOW,
    };
    plan(r, &live, &input, &mut decision);
    decision
}

/// Scaling in stops what the placement order names first (among running tasks).
#[test]
fn scale_in_follows_the_placement_order() {
    let mut r = service(2, &[("d1", "web:1")]);
    let live = [
        task("a", "d1", "RUNNING", "UNKNOWN"),
        task("b", "d1", "RUNNING", "UNKNOWN"),
        task("c", "d1", "RUNNING", "UNKNOWN"),
        task("d", "d1", "RUNNING", "UNKNOWN"),
    ];
    let live: Vec<&TaskRecord> = live.iter().collect();
    let order = [
        "c".to_string(),
        "a".to_string(),
        "d".to_string(),
        "b".to_string(),
    ];
    let mut decision = Decision::default();
    let input = Pass {
        draining: &BTreeSet::new(),
        gone: &BTreeSet::new(),
        failures: &HashMap::new(),
        scale_in: &order,
        balanced: false,
        serving: &BTreeSet::new(),
        failing: &BTreeSet::new(),
        now_ms: NOW,
    };
    plan(&mut r, &live, &input, &mut decision);
    assert_eq!(stopped(&decision), ["c", "a"]);
}

fn stopped(d: &Decision) -> Vec<&str> {
    d.stop.iter().map(|(id, _)| id.as_str()).collect()
}

#[test]
fn a_new_service_launches_its_desired_count() {
    let mut r = service(3, &[("d1", "web:1")]);
    let d = pass(&mut r, &[], &[]);
    let (deployment, definition, images, n) = d.launch.unwrap();
    assert_eq!(
        (deployment.as_str(), definition.as_str(), n),
        ("d1", "web:1", 3)
    );
    assert_eq!(
        images.get("app").map(String::as_str),
        Some("h/app@sha256:aa")
    );
    assert!(d.stop.is_empty());
}

#[test]
fn an_unhealthy_task_is_replaced_after_a_backoff() {
    let mut r = service(1, &[("d1", "web:1")]);
    let d = pass(&mut r, &[task("t1", "d1", "RUNNING", "UNHEALTHY")], &[]);
    assert_eq!(
        d.stop,
        [(
            "t1".to_string(),
            "Task failed container health checks".to_string()
        )]
    );
    assert_eq!(r.service.deployments[0].failed_tasks, 1);
    assert_eq!(r.consecutive_failures, 1);
    assert_eq!(r.launch_after_ms, NOW + 1000);
    // The replacement waits for the backoff.
    assert!(d.launch.is_none());
    let d = pass(&mut r, &[], &[("d1", 1)]);
    assert!(d.launch.is_none());
    assert_eq!(r.launch_after_ms, NOW + 2000, "the backoff doubles");
}

#[test]
fn the_circuit_breaker_stops_launches_and_rolls_back() {
    let mut r = service(2, &[("d2", "web:2"), ("d1", "web:1")]);
    r.last_completed = Some("web:1".into());
    let d = pass(
        &mut r,
        &[task("t1", "d1", "RUNNING", "UNKNOWN")],
        &[("d2", 3)],
    );
    let primary = &r.service.deployments[0];
    assert_eq!(primary.rollout_state, RolloutState::Failed);
    assert_eq!(d.rollback.as_deref(), Some("web:1"));
    assert!(d.launch.is_none());
    assert!(d.stop.is_empty(), "the old deployment's task keeps running");
    assert!(
        r.service.events[0]
            .message
            .contains("deployment d2 deployment failed")
    );
}

#[test]
fn a_rolling_deployment_keeps_the_minimum_healthy() {
    let mut r = service(2, &[("d2", "web:2"), ("d1", "web:1")]);
    let old = [
        task("a", "d1", "RUNNING", "UNKNOWN"),
        task("b", "d1", "RUNNING", "UNKNOWN"),
        task("c", "d1", "PENDING", "UNKNOWN"),
    ];
    let d = pass(&mut r, &old, &[]);
    // Up to 200 %: one more besides the three old ones.
    assert_eq!(d.launch.as_ref().map(|l| l.3), Some(1));
    // 100 % healthy: the running ones stay, the pending one goes.
    assert_eq!(stopped(&d), ["c"]);
    // The new tasks run: the old ones may go.
    let mut live = old[..2].to_vec();
    live.push(task("n1", "d2", "RUNNING", "UNKNOWN"));
    live.push(task("n2", "d2", "RUNNING", "UNKNOWN"));
    let d = pass(&mut r, &live, &[]);
    assert!(d.launch.is_none());
    assert_eq!(stopped(&d), ["a", "b"]);
}

#[test]
fn scaling_in_stops_tasks_that_never_ran_first() {
    let mut r = service(2, &[("d1", "web:1")]);
    let live = [
        task("a", "d1", "RUNNING", "UNKNOWN"),
        task("b", "d1", "PROVISIONING", "UNKNOWN"),
        task("c", "d1", "RUNNING", "UNKNOWN"),
    ];
    let d = pass(&mut r, &live, &[]);
    assert_eq!(
        d.stop,
        [("b".to_string(), "Service web scaled down".to_string())]
    );
}

#[test]
fn a_steady_service_completes_its_deployment() {
    let mut r = service(2, &[("d2", "web:2"), ("d1", "web:1")]);
    r.consecutive_failures = 2;
    let live = [
        task("a", "d2", "RUNNING", "UNKNOWN"),
        task("b", "d2", "RUNNING", "UNKNOWN"),
    ];
    assert!({
        let live: Vec<&TaskRecord> = live.iter().collect();
        let input = Pass {
            draining: &BTreeSet::new(),
            gone: &BTreeSet::new(),
            failures: &HashMap::new(),
            scale_in: &[],
            balanced: false,
            serving: &BTreeSet::new(),
            failing: &BTreeSet::new(),
            now_ms: NOW,
        };
        plan(&mut r, &live, &input, &mut Decision::default())
    });
    assert_eq!(r.service.deployments.len(), 1, "d1 has no tasks left");
    assert_eq!(
        r.service.deployments[0].rollout_state,
        RolloutState::Completed
    );
    assert_eq!(r.last_completed.as_deref(), Some("web:2"));
    assert_eq!((r.consecutive_failures, r.launch_after_ms), (0, 0));
    assert!(!r.images.contains_key("d1"));
}

#[test]
fn a_deleted_service_drains_then_is_inactive() {
    let mut r = service(0, &[("d1", "web:1")]);
    r.service.status = ServiceStatus::Draining;
    let d = pass(&mut r, &[task("a", "d1", "RUNNING", "UNKNOWN")], &[]);
    assert_eq!(
        d.stop,
        [("a".to_string(), "Service web is being deleted".to_string())]
    );
    assert_eq!(r.service.status, ServiceStatus::Draining);
    pass(&mut r, &[], &[]);
    assert_eq!(r.service.status, ServiceStatus::Inactive);
    assert_eq!(r.service.deployments[0].status, DeploymentStatus::Inactive);
}

/// A service as the previous version (statuses as strings) stored it reads
/// into the enums and writes back byte for byte.
#[test]
fn stored_services_of_earlier_versions_read_and_write_back_identically() {
    let stored = r#"{"service":{"serviceArn":"arn:aws:ecs:us-east-1:000000000000:service/default/web","serviceName":"web","clusterArn":"arn:aws:ecs:us-east-1:000000000000:cluster/default","taskDefinition":"arn:aws:ecs:us-east-1:000000000000:task-definition/web:2","desiredCount":2,"runningCount":0,"pendingCount":0,"status":"DRAINING","launchType":"EC2","schedulingStrategy":"REPLICA","deploymentConfiguration":{"maximumPercent":200,"minimumHealthyPercent":100,"deploymentCircuitBreaker":{"enable":true,"rollback":false}},"deployments":[{"id":"ecs-svc/2","status":"PRIMARY","taskDefinition":"arn:aws:ecs:us-east-1:000000000000:task-definition/web:2","desiredCount":2,"pendingCount":0,"runningCount":0,"failedTasks":3,"createdAt":1700000000.0,"updatedAt":1700000001.5,"launchType":"EC2","rolloutState":"FAILED","rolloutStateReason":"ECS deployment circuit breaker: tasks failed to start (3 failed tasks)."},{"id":"ecs-svc/1","status":"ACTIVE","taskDefinition":"arn:aws:ecs:us-east-1:000000000000:task-definition/web:1","desiredCount":2,"pendingCount":0,"runningCount":0,"failedTasks":0,"createdAt":1690000000.0,"updatedAt":1690000000.0,"launchType":"EC2","rolloutState":"COMPLETED","rolloutStateReason":"ECS deployment ecs-svc/1 completed."}],"events":[{"id":"5c0c","createdAt":1700000001.5,"message":"(service web) has reached a steady state."}],"createdAt":1690000000.0,"createdBy":"arn:aws:iam::000000000000:user/admin"},"cluster":"default","images":{"ecs-svc/1":{"app":"localhost:5000/app@sha256:aa"}},"consecutiveFailures":3,"launchAfterMs":1700000005000,"lastCompleted":"arn:aws:ecs:us-east-1:000000000000:task-definition/web:1"}"#;
    let r: ServiceRecord = serde_json::from_str(stored).unwrap();
    assert_eq!(r.service.status, ServiceStatus::Draining);
    assert_eq!(r.service.deployments[0].status, DeploymentStatus::Primary);
    assert_eq!(
        r.service.deployments[1].rollout_state,
        RolloutState::Completed
    );
    assert_eq!(serde_json::to_string(&r).unwrap(), stored);
    let inactive = stored.replace(r#""status":"DRAINING""#, r#""status":"INACTIVE""#);
    let r: ServiceRecord = serde_json::from_str(&inactive).unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), inactive);
}

#[test]
fn draining_replaces_first_and_stops_once_replacements_run() {
    let mut r = service(2, &[("d1", "web:1")]);
    let on_drained = [
        task("a", "d1", "RUNNING", "UNKNOWN"),
        task("b", "d1", "RUNNING", "UNKNOWN"),
    ];
    // Both are on the draining instance: two replacements (200 %), no stop yet.
    let d = pass_draining(&mut r, &on_drained, &["a", "b"]);
    assert_eq!(d.launch.as_ref().map(|l| l.3), Some(2));
    assert!(stopped(&d).is_empty());
    // One replacement runs elsewhere, one is pending: one may go.
    let mut live = on_drained.to_vec();
    live.push(task("n1", "d1", "RUNNING", "UNKNOWN"));
    live.push(task("n2", "d1", "PENDING", "UNKNOWN"));
    let d = pass_draining(&mut r, &live, &["a", "b"]);
    assert!(d.launch.is_none());
    assert_eq!(stopped(&d).len(), 1);
    // Both run: the rest goes.
    live[3] = task("n2", "d1", "RUNNING", "UNKNOWN");
    let d = pass_draining(&mut r, &live, &["a", "b"]);
    assert_eq!(stopped(&d), ["a", "b"]);
}

#[test]
fn draining_with_nowhere_to_go_keeps_the_tasks() {
    // The replacements could not be placed: nothing runs elsewhere.
    let mut r = service(2, &[("d1", "web:1")]);
    let live = [
        task("a", "d1", "RUNNING", "UNKNOWN"),
        task("b", "d1", "RUNNING", "UNKNOWN"),
    ];
    let mut less = r.clone();
    less.service
        .deployment_configuration
        .minimum_healthy_percent = 0;
    for r in [&mut r, &mut less] {
        let d = pass_draining(r, &live, &["a", "b"]);
        assert!(stopped(&d).is_empty());
        assert_eq!(d.launch.as_ref().map(|l| l.3), Some(2));
    }
    // maximumPercent 100: no room for replacements, and none stops (ECS deadlocks too).
    let mut tight = service(2, &[("d1", "web:1")]);
    tight.service.deployment_configuration.maximum_percent = 100;
    let d = pass_draining(&mut tight, &live, &["a", "b"]);
    assert!(d.launch.is_none());
    assert!(stopped(&d).is_empty());
}

/// Tasks on a host that is gone are stopped at once and replaced, whatever
/// maximumPercent allows for a drain.
#[test]
fn tasks_on_a_gone_host_are_replaced_at_once() {
    let mut r = service(2, &[("d1", "web:1")]);
    r.service.deployment_configuration.maximum_percent = 100;
    let live = [
        task("a", "d1", "RUNNING", "UNKNOWN"),
        task("b", "d1", "RUNNING", "UNKNOWN"),
    ];
    let live: Vec<&TaskRecord> = live.iter().collect();
    let gone: BTreeSet<String> = ["a".to_string()].into();
    let mut decision = Decision::default();
    let input = Pass {
        draining: &BTreeSet::new(),
        gone: &gone,
        failures: &HashMap::new(),
        scale_in: &[],
        balanced: false,
        serving: &BTreeSet::new(),
        failing: &BTreeSet::new(),
        now_ms: NOW,
    };
    plan(&mut r, &live, &input, &mut decision);
    assert_eq!(stopped(&decision), ["a"]);
    let (_, _, _, count) = decision.launch.expect("a replacement");
    assert_eq!(count, 1);
}

/// A pass for a service behind a load balancer: `serving` tasks have
/// healthy targets, `failing` ones unhealthy targets past the grace period.
fn pass_balanced(
    r: &mut ServiceRecord,
    live: &[TaskRecord],
    serving: &[&str],
    failing: &[&str],
) -> Decision {
    let live: Vec<&TaskRecord> = live.iter().collect();
    let set = |ids: &[&str]| -> BTreeSet<String> { ids.iter().map(|s| s.to_string()).collect() };
    let (serving, failing) = (set(serving), set(failing));
    let mut decision = Decision::default();
    let input = Pass {
        draining: &BTreeSet::new(),
        gone: &BTreeSet::new(),
        failures: &HashMap::new(),
        scale_in: &[],
        balanced: true,
        serving: &serving,
        failing: &failing,
        now_ms: NOW,
    };
    plan(r, &live, &input, &mut decision);
    decision
}

/// Behind a load balancer a new task replaces an old one only once its
/// targets are healthy: running is not enough.
#[test]
fn a_balanced_deployment_waits_for_healthy_targets() {
    let mut r = service(2, &[("d2", "web:2"), ("d1", "web:1")]);
    let live = [
        task("o1", "d1", "RUNNING", "UNKNOWN"),
        task("o2", "d1", "RUNNING", "UNKNOWN"),
        task("n1", "d2", "RUNNING", "UNKNOWN"),
        task("n2", "d2", "RUNNING", "UNKNOWN"),
    ];
    let d = pass_balanced(&mut r, &live, &["o1", "o2"], &[]);
    assert!(stopped(&d).is_empty(), "{d:?}");
    let d = pass_balanced(&mut r, &live, &["o1", "o2", "n1"], &[]);
    assert_eq!(stopped(&d).len(), 1, "{d:?}");
    let d = pass_balanced(&mut r, &live, &["o1", "o2", "n1", "n2"], &[]);
    assert_eq!(stopped(&d).len(), 2, "{d:?}");
    // The deployment completes only once the new tasks serve.
    let mut r = service(2, &[("d2", "web:2")]);
    let live = [
        task("n1", "d2", "RUNNING", "UNKNOWN"),
        task("n2", "d2", "RUNNING", "UNKNOWN"),
    ];
    pass_balanced(&mut r, &live, &["n1"], &[]);
    assert_eq!(
        r.service.deployments[0].rollout_state,
        RolloutState::InProgress
    );
    pass_balanced(&mut r, &live, &["n1", "n2"], &[]);
    assert_eq!(
        r.service.deployments[0].rollout_state,
        RolloutState::Completed
    );
}

/// A task failing its target health checks is replaced first when
/// maximumPercent leaves room, and stopped once the replacement serves;
/// without room it is stopped at once.
#[test]
fn a_task_with_unhealthy_targets_is_replaced() {
    let mut r = service(2, &[("d1", "web:1")]);
    let live = [
        task("a", "d1", "RUNNING", "UNKNOWN"),
        task("b", "d1", "RUNNING", "UNKNOWN"),
    ];
    let d = pass_balanced(&mut r, &live, &["a"], &["b"]);
    assert!(stopped(&d).is_empty(), "{d:?}");
    assert_eq!(d.launch.as_ref().map(|l| l.3), Some(1), "{d:?}");
    let with_new = [
        task("a", "d1", "RUNNING", "UNKNOWN"),
        task("b", "d1", "RUNNING", "UNKNOWN"),
        task("c", "d1", "RUNNING", "UNKNOWN"),
    ];
    let d = pass_balanced(&mut r, &with_new, &["a", "c"], &["b"]);
    assert_eq!(stopped(&d), ["b"]);
    assert!(d.stop[0].1.contains("failed ELB health checks"), "{d:?}");
    // maximumPercent 100: no room, stopped now.
    let mut r = service(2, &[("d1", "web:1")]);
    r.service.deployment_configuration.maximum_percent = 100;
    r.service.deployment_configuration.minimum_healthy_percent = 50;
    let d = pass_balanced(&mut r, &live, &["a"], &["b"]);
    assert_eq!(stopped(&d), ["b"]);
}
