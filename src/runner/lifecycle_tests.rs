//! The task state machine without an engine: each transition from a stored
//! record and what the engine shows.

use std::collections::HashMap;

use super::*;
use crate::runner::model::{Container, Task, TaskOverride};

fn definition(json: serde_json::Value) -> ContainerDefinition {
    serde_json::from_value(json).unwrap()
}

/// A task of `plan` in `status`, each container PENDING.
fn record(plan: Vec<ContainerDefinition>, status: TaskStatus) -> TaskRecord {
    let containers = plan
        .iter()
        .map(|c| Container {
            container_arn: format!("arn:container/{}", c.name),
            task_arn: "arn:task/t1".into(),
            name: c.name.clone(),
            image: c.image.clone(),
            image_digest: None,
            runtime_id: None,
            last_status: ContainerState::Pending,
            exit_code: None,
            reason: None,
            network_bindings: Vec::new(),
            health_status: HealthStatus::Unknown,
            cpu: None,
            memory: None,
            memory_reservation: None,
        })
        .collect();
    TaskRecord {
        task: Task {
            task_arn: "arn:task/t1".into(),
            task_definition_arn: "arn:td/web:1".into(),
            cluster_arn: "arn:cluster/default".into(),
            container_instance_arn: None,
            containers,
            last_status: status,
            desired_status: DesiredStatus::Running,
            health_status: HealthStatus::Unknown,
            launch_type: "EC2".into(),
            cpu: None,
            memory: None,
            overrides: TaskOverride::default(),
            created_at: 1.0,
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            stopping_at: None,
            execution_stopped_at: None,
            stopped_at: None,
            started_by: None,
            group: None,
            stop_code: None,
            stopped_reason: None,
            version: 1,
        },
        id: "t1".into(),
        cluster: "default".into(),
        family: "web".into(),
        network_mode: "bridge".into(),
        cpu_units: None,
        memory_mib: None,
        plan,
        resolved: Default::default(),
        service: None,
        deployment: None,
        client_token: None,
        accounted: false,
    }
}

/// A RUNNING task: `app` (essential, health-checked) and `sidecar` (not essential).
fn running_pair() -> TaskRecord {
    let app = definition(serde_json::json!({
        "name": "app", "image": "h/app:1", "memory": 64,
        "healthCheck": {"command": ["CMD", "true"]}
    }));
    let sidecar = definition(serde_json::json!({
        "name": "sidecar", "image": "h/side:1", "memory": 64, "essential": false
    }));
    let mut r = record(vec![app, sidecar], TaskStatus::Running);
    for c in &mut r.task.containers {
        c.last_status = ContainerState::Running;
        c.runtime_id = Some(format!("id-{}", c.name));
    }
    r
}

fn seen(pairs: &[(&str, Seen)]) -> HashMap<String, Seen> {
    pairs
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect()
}

fn status(
    running: bool,
    exited: bool,
    exit_code: Option<i32>,
    health: HealthStatus,
) -> ContainerStatus {
    ContainerStatus {
        id: "x".into(),
        running,
        exited,
        exit_code,
        oom_killed: false,
        health,
        error: None,
        bindings: Vec::new(),
    }
}

#[test]
fn each_state_has_its_step() {
    let mut r = running_pair();
    assert_eq!(step(&r), Step::Watch);
    for s in [
        TaskStatus::Provisioning,
        TaskStatus::Pending,
        TaskStatus::Activating,
    ] {
        r.task.last_status = s;
        assert_eq!(step(&r), Step::Start, "{s}");
        assert!(wants_start(&r));
    }
    for s in [
        TaskStatus::Deactivating,
        TaskStatus::Stopping,
        TaskStatus::Deprovisioning,
    ] {
        r.task.last_status = s;
        assert_eq!(step(&r), Step::Stop, "{s}");
        assert!(!wants_start(&r));
    }
    // A stop asked for wins over whatever the task was doing.
    r.task.last_status = TaskStatus::Pending;
    r.task.desired_status = DesiredStatus::Stopped;
    assert_eq!(step(&r), Step::Stop);
    assert!(!wants_start(&r));
}

#[test]
fn an_essential_container_that_exits_stops_the_task() {
    let mut r = running_pair();
    let t = observe(
        &mut r,
        &seen(&[(
            "app",
            Seen::Ended {
                exit_code: Some(3),
                oom_killed: false,
            },
        )]),
        10.0,
    );
    assert_eq!(
        t,
        Transition {
            changed: true,
            stop: true
        }
    );
    assert_eq!(r.task.desired_status, DesiredStatus::Stopped);
    assert_eq!(r.task.stop_code, Some(StopCode::EssentialContainerExited));
    assert_eq!(
        r.task.stopped_reason.as_deref(),
        Some("Essential container in task exited: app")
    );
    assert_eq!(r.task.stopping_at, Some(10.0));
    // The task itself is still RUNNING: the stop job moves it on.
    assert_eq!(r.task.last_status, TaskStatus::Running);
    let app = &r.task.containers[0];
    assert_eq!(
        (app.last_status, app.exit_code),
        (ContainerState::Stopped, Some(3))
    );
    assert_eq!(step(&r), Step::Stop);
}

#[test]
fn a_sidecar_that_exits_leaves_the_task_running() {
    let mut r = running_pair();
    let t = observe(
        &mut r,
        &seen(&[(
            "sidecar",
            Seen::Ended {
                exit_code: Some(0),
                oom_killed: false,
            },
        )]),
        10.0,
    );
    assert_eq!(
        t,
        Transition {
            changed: true,
            stop: false
        }
    );
    assert_eq!(r.task.desired_status, DesiredStatus::Running);
    assert_eq!(r.task.containers[1].last_status, ContainerState::Stopped);
    assert_eq!(r.task.containers[1].exit_code, Some(0));
    assert_eq!(r.task.stop_code, None);
}

#[test]
fn a_vanished_or_oom_killed_container_says_why() {
    let mut r = running_pair();
    observe(&mut r, &seen(&[("app", Seen::Missing)]), 1.0);
    assert_eq!(
        r.task.containers[0].reason.as_deref(),
        Some(VANISHED_REASON)
    );
    assert_eq!(r.task.stop_code, Some(StopCode::EssentialContainerExited));

    let mut r = running_pair();
    let ended = Seen::Ended {
        exit_code: Some(137),
        oom_killed: true,
    };
    observe(&mut r, &seen(&[("sidecar", ended)]), 1.0);
    assert_eq!(r.task.containers[1].reason.as_deref(), Some(OOM_REASON));
    assert_eq!(r.task.desired_status, DesiredStatus::Running);
}

#[test]
fn the_first_essential_container_in_definition_order_is_named() {
    let a = definition(serde_json::json!({"name": "zeta", "image": "h/a:1", "memory": 8}));
    let b = definition(serde_json::json!({"name": "alpha", "image": "h/b:1", "memory": 8}));
    let mut r = record(vec![a, b], TaskStatus::Running);
    let ended = Seen::Ended {
        exit_code: Some(1),
        oom_killed: false,
    };
    observe(
        &mut r,
        &seen(&[("alpha", ended.clone()), ("zeta", ended)]),
        1.0,
    );
    assert_eq!(
        r.task.stopped_reason.as_deref(),
        Some("Essential container in task exited: zeta")
    );
}

#[test]
fn health_follows_the_essential_checked_containers() {
    let mut r = running_pair();
    let t = observe(
        &mut r,
        &seen(&[("app", Seen::Running(HealthStatus::Healthy))]),
        1.0,
    );
    assert_eq!(
        t,
        Transition {
            changed: true,
            stop: false
        }
    );
    assert_eq!(r.task.health_status, HealthStatus::Healthy);
    // The same again changes nothing.
    let t = observe(
        &mut r,
        &seen(&[("app", Seen::Running(HealthStatus::Healthy))]),
        2.0,
    );
    assert_eq!(t, Transition::default());
    let t = observe(
        &mut r,
        &seen(&[("app", Seen::Running(HealthStatus::Unhealthy))]),
        3.0,
    );
    assert!(
        t.changed && !t.stop,
        "an unhealthy task is the scheduler's to replace"
    );
    assert_eq!(r.task.health_status, HealthStatus::Unhealthy);
    // Without an essential container with a health check, UNKNOWN.
    r.plan[0].health_check = None;
    assert_eq!(task_health(&r), HealthStatus::Unknown);
}

#[test]
fn only_a_running_task_is_changed_by_what_the_engine_shows() {
    let mut r = running_pair();
    r.task.last_status = TaskStatus::Activating;
    let before = r.clone();
    let t = observe(&mut r, &seen(&[("app", Seen::Missing)]), 1.0);
    assert_eq!(t, Transition::default());
    assert_eq!(r, before);
}

#[test]
fn a_stop_is_asked_for_once() {
    let mut r = running_pair();
    assert!(request_stop(
        &mut r,
        StopCode::UserInitiated,
        "by hand",
        5.0
    ));
    assert!(!request_stop(
        &mut r,
        StopCode::ServiceSchedulerInitiated,
        "later",
        6.0
    ));
    assert!(!fail_start(&mut r, Some("app"), "too late", 7.0));
    assert_eq!(r.task.stop_code, Some(StopCode::UserInitiated));
    assert_eq!(r.task.stopped_reason.as_deref(), Some("by hand"));
    assert_eq!(r.task.stopping_at, Some(5.0));
    r.task.last_status = TaskStatus::Stopped;
    r.task.desired_status = DesiredStatus::Running;
    assert!(!request_stop(
        &mut r,
        StopCode::UserInitiated,
        "stopped",
        8.0
    ));
}

#[test]
fn a_failed_start_names_the_container_at_fault() {
    let mut r = running_pair();
    r.task.last_status = TaskStatus::Pending;
    assert!(fail_start(
        &mut r,
        Some("sidecar"),
        "CannotPullContainerError: no",
        2.0
    ));
    assert_eq!(r.task.stop_code, Some(StopCode::TaskFailedToStart));
    assert_eq!(
        r.task.containers[1].reason.as_deref(),
        Some("CannotPullContainerError: no")
    );
    assert!(fail_start(&mut running_pair(), Some("nobody"), "x", 2.0));
}

#[test]
fn starting_goes_forward_step_by_step() {
    let mut r = running_pair();
    r.task.last_status = TaskStatus::Provisioning;
    for c in &mut r.task.containers {
        c.last_status = ContainerState::Pending;
    }
    let resolved = [("app".to_string(), "h/app@sha256:aa".to_string())].into();
    pulling(&mut r, &resolved, 1.0);
    assert_eq!(r.task.last_status, TaskStatus::Pending);
    assert_eq!(
        r.task.containers[0].image_digest.as_deref(),
        Some("sha256:aa")
    );
    assert_eq!(r.task.containers[1].image_digest, None);
    activating(&mut r, 2.0);
    assert_eq!(
        (r.task.last_status, r.task.pull_stopped_at),
        (TaskStatus::Activating, Some(2.0))
    );
    assert!(!already_started(&r, "app"));
    container_started(&mut r, "app", &[]);
    assert!(already_started(&r, "app"));
    running(&mut r, 3.0);
    running(&mut r, 4.0);
    assert_eq!(
        (r.task.last_status, r.task.started_at),
        (TaskStatus::Running, Some(3.0))
    );
}

#[test]
fn stopping_never_goes_back_and_ends_stopped() {
    let mut r = running_pair();
    stopping(&mut r, TaskStatus::Stopping, 1.0);
    stopping(&mut r, TaskStatus::Deactivating, 2.0);
    assert_eq!(r.task.last_status, TaskStatus::Stopping);
    assert_eq!(r.task.stopping_at, Some(1.0));
    // app ran (it has a runtime id); sidecar never did.
    r.task.containers[1].runtime_id = None;
    let inspected = HashMap::from([
        (
            "app".to_string(),
            Some(status(false, true, Some(143), HealthStatus::Unknown)),
        ),
        (
            "sidecar".to_string(),
            Some(status(false, true, Some(0), HealthStatus::Unknown)),
        ),
    ]);
    stopped(&mut r, &inspected, 3.0, 4.0);
    assert_eq!(r.task.last_status, TaskStatus::Stopped);
    assert!(!r.is_live());
    assert_eq!(r.task.containers[0].exit_code, Some(143));
    assert_eq!(r.task.containers[1].exit_code, None);
    assert!(
        r.task
            .containers
            .iter()
            .all(|c| c.last_status == ContainerState::Stopped)
    );
    assert_eq!(
        (r.task.execution_stopped_at, r.task.stopped_at),
        (Some(3.0), Some(4.0))
    );
}

#[test]
fn dependency_conditions_gate_starts() {
    use DependencyCondition::*;
    let created = status(false, false, None, HealthStatus::Unknown);
    let up = status(true, false, None, HealthStatus::Unknown);
    let healthy = status(true, false, None, HealthStatus::Healthy);
    let unhealthy = status(true, false, None, HealthStatus::Unhealthy);
    let ok = status(false, true, Some(0), HealthStatus::Unknown);
    let failed = status(false, true, Some(2), HealthStatus::Unknown);
    let never = |g: Gate| matches!(g, Gate::Never(_));
    assert_eq!(gate("d", Start, Some(&created)), Gate::Wait);
    assert_eq!(gate("d", Start, Some(&up)), Gate::Met);
    assert_eq!(gate("d", Start, Some(&failed)), Gate::Met);
    assert_eq!(gate("d", Complete, Some(&up)), Gate::Wait);
    assert_eq!(gate("d", Complete, Some(&failed)), Gate::Met);
    assert_eq!(gate("d", Success, Some(&up)), Gate::Wait);
    assert_eq!(gate("d", Success, Some(&ok)), Gate::Met);
    assert!(never(gate("d", Success, Some(&failed))));
    assert_eq!(gate("d", Healthy, Some(&up)), Gate::Wait);
    assert_eq!(gate("d", Healthy, Some(&healthy)), Gate::Met);
    assert!(never(gate("d", Healthy, Some(&unhealthy))));
    assert!(never(gate("d", Healthy, Some(&ok))));
    for c in DependencyCondition::ALL {
        assert_eq!(
            gate("db", *c, None),
            Gate::Never("CannotStartContainerError: dependency db vanished".into())
        );
    }
}

#[test]
fn containers_start_after_their_dependencies() {
    let plan = vec![
        definition(
            serde_json::json!({"name": "app", "image": "h/a:1", "memory": 8,
            "dependsOn": [{"containerName": "db", "condition": "HEALTHY"},
                          {"containerName": "init", "condition": "SUCCESS"}]}),
        ),
        definition(
            serde_json::json!({"name": "db", "image": "h/b:1", "memory": 8,
            "dependsOn": [{"containerName": "init", "condition": "COMPLETE"}]}),
        ),
        definition(
            serde_json::json!({"name": "init", "image": "h/c:1", "memory": 8, "essential": false}),
        ),
        // A name no container has (refused at registration) does not wedge the order.
        definition(
            serde_json::json!({"name": "odd", "image": "h/d:1", "memory": 8,
            "dependsOn": [{"containerName": "ghost", "condition": "START"}]}),
        ),
    ];
    let order: Vec<&str> = start_order(&plan).iter().map(|c| c.name.as_str()).collect();
    assert_eq!(order, ["init", "db", "app", "odd"]);
}

/// A record as the previous version (statuses as strings) stored it reads
/// into the enums and writes back byte for byte.
#[test]
fn stored_records_of_earlier_versions_read_and_write_back_identically() {
    let stored = r#"{"task":{"taskArn":"arn:aws:ecs:us-east-1:000000000000:task/default/0f1e","taskDefinitionArn":"arn:aws:ecs:us-east-1:000000000000:task-definition/web:1","clusterArn":"arn:aws:ecs:us-east-1:000000000000:cluster/default","containers":[{"containerArn":"arn:aws:ecs:us-east-1:000000000000:container/default/0f1e/5d","taskArn":"arn:aws:ecs:us-east-1:000000000000:task/default/0f1e","name":"app","image":"localhost:5000/app:1","imageDigest":"sha256:aa","runtimeId":"c1","lastStatus":"STOPPED","exitCode":1,"reason":"OutOfMemoryError: Container killed due to memory usage","networkBindings":[{"bindIP":"127.0.0.1","containerPort":80,"hostPort":32768,"protocol":"tcp"}],"healthStatus":"UNHEALTHY","cpu":"0","memory":"64"},{"containerArn":"arn:aws:ecs:us-east-1:000000000000:container/default/0f1e/6e","taskArn":"arn:aws:ecs:us-east-1:000000000000:task/default/0f1e","name":"init","image":"localhost:5000/init:1","lastStatus":"PENDING","networkBindings":[],"healthStatus":"UNKNOWN","cpu":"0"}],"lastStatus":"DEPROVISIONING","desiredStatus":"STOPPED","healthStatus":"HEALTHY","launchType":"EC2","memory":"512","overrides":{"containerOverrides":[]},"createdAt":1700000000.5,"pullStartedAt":1700000001.0,"pullStoppedAt":1700000002.0,"startedAt":1700000003.0,"stoppingAt":1700000004.0,"startedBy":"ecs-svc/1","group":"service:web","stopCode":"EssentialContainerExited","stoppedReason":"Essential container in task exited: app","version":7},"id":"0f1e","cluster":"default","family":"web","networkMode":"bridge","cpuUnits":null,"memoryMib":512,"plan":[{"name":"app","image":"localhost:5000/app:1","cpu":0,"memory":64,"essential":true,"environment":[],"portMappings":[{"containerPort":80,"protocol":"tcp"}],"healthCheck":{"command":["CMD","true"],"interval":30,"timeout":5,"retries":3,"startPeriod":0},"dependsOn":[{"containerName":"init","condition":"SUCCESS"}]},{"name":"init","image":"localhost:5000/init:1","cpu":0,"essential":false,"environment":[],"portMappings":[]}],"resolved":{"app":"localhost:5000/app@sha256:aa"},"service":"web","deployment":"ecs-svc/1","accounted":true}"#;
    let r: TaskRecord = serde_json::from_str(stored).unwrap();
    assert_eq!(r.task.last_status, TaskStatus::Deprovisioning);
    assert_eq!(r.task.stop_code, Some(StopCode::EssentialContainerExited));
    assert_eq!(
        r.plan[0].depends_on[0].condition,
        DependencyCondition::Success
    );
    assert_eq!(r.task.containers[0].health_status, HealthStatus::Unhealthy);
    assert_eq!(serde_json::to_string(&r).unwrap(), stored);
    for code in StopCode::ALL {
        let doc = stored.replace("EssentialContainerExited", code.as_str());
        let r: TaskRecord = serde_json::from_str(&doc).unwrap();
        assert_eq!(serde_json::to_string(&r).unwrap(), doc);
    }
}
