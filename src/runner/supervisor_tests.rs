//! The supervisor's engine-facing steps over the in-memory engine: what it
//! looks at, how it waits for dependencies, and a whole task's life driven
//! by the pure transitions.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;
use crate::runner::engine::ContainerEngine;
use crate::runner::memory::MemoryEngine;
use crate::runner::model::{DesiredStatus, HealthStatus, StopCode};

const SHORT: Duration = Duration::from_millis(50);
const POLL: Duration = Duration::from_millis(5);

fn definition(json: serde_json::Value) -> ContainerDefinition {
    serde_json::from_value(json).unwrap()
}

fn spec(task: &str, c: &ContainerDefinition) -> ContainerSpec {
    ContainerSpec {
        name: container_name(task, &c.name),
        image: c.image.clone(),
        labels: HashMap::from([
            (LABEL_INSTANCE.to_string(), "here".to_string()),
            (LABEL_TASK.to_string(), task.to_string()),
            (LABEL_CONTAINER.to_string(), c.name.clone()),
        ]),
        network_mode: "bridge".into(),
        ..Default::default()
    }
}

/// A task record of `plan` as RunTask stores it (PROVISIONING).
fn task(plan: Vec<ContainerDefinition>) -> TaskRecord {
    let containers: Vec<serde_json::Value> = plan
        .iter()
        .map(|c| {
            serde_json::json!({
                "containerArn": format!("arn:c/{}", c.name), "taskArn": "arn:t/t1",
                "name": c.name, "image": c.image, "lastStatus": "PENDING",
                "networkBindings": [], "healthStatus": "UNKNOWN"
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "task": {
            "taskArn": "arn:t/t1", "taskDefinitionArn": "arn:td/web:1",
            "clusterArn": "arn:cluster/default", "containers": containers,
            "lastStatus": "PROVISIONING", "desiredStatus": "RUNNING",
            "healthStatus": "UNKNOWN", "launchType": "EC2", "overrides": {},
            "createdAt": 1.0, "version": 1
        },
        "id": "t1", "cluster": "default", "family": "web", "networkMode": "bridge",
        "cpuUnits": null, "memoryMib": null, "plan": plan
    }))
    .unwrap()
}

/// Creates `r`'s containers on `engine`; their ids by container name.
async fn create_all(engine: &MemoryEngine, r: &mut TaskRecord) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    for c in &r.plan {
        ids.insert(
            c.name.clone(),
            engine.create(&spec(&r.id, c)).await.unwrap(),
        );
    }
    lifecycle::created(r, &ids);
    ids
}

#[tokio::test]
async fn dependencies_wait_for_their_condition() {
    let engine = MemoryEngine::default();
    let init = definition(
        serde_json::json!({"name": "init", "image": "h/i:1", "memory": 8, "essential": false}),
    );
    let app = definition(
        serde_json::json!({"name": "app", "image": "h/a:1", "memory": 8,
        "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}]}),
    );
    let mut r = task(vec![init, app.clone()]);
    let ids = create_all(&engine, &mut r).await;
    // init was created but not started: the wait times out.
    let waited = await_dependencies(&engine, "t1", &app, &ids, SHORT, POLL)
        .await
        .unwrap();
    assert_eq!(
        waited,
        Err(
            "CannotStartContainerError: timed out waiting for init to reach SUCCESS (task t1)"
                .into()
        )
    );
    engine.start(&ids["init"]).await.unwrap();
    engine.exit(&ids["init"], 0);
    assert_eq!(
        await_dependencies(&engine, "t1", &app, &ids, SHORT, POLL)
            .await
            .unwrap(),
        Ok(())
    );
    engine.exit(&ids["init"], 1);
    let waited = await_dependencies(&engine, "t1", &app, &ids, SHORT, POLL)
        .await
        .unwrap();
    assert!(waited.unwrap_err().contains("not SUCCESS"));
    engine.vanish(&ids["init"]);
    let waited = await_dependencies(&engine, "t1", &app, &ids, SHORT, POLL)
        .await
        .unwrap();
    assert_eq!(
        waited,
        Err("CannotStartContainerError: dependency init vanished".into())
    );
}

/// A dependency the task has no container for fails the start; it used to panic.
#[tokio::test]
async fn a_dependency_on_no_container_fails_the_start() {
    let engine = MemoryEngine::default();
    let app = definition(
        serde_json::json!({"name": "app", "image": "h/a:1", "memory": 8,
        "dependsOn": [{"containerName": "ghost", "condition": "START"}]}),
    );
    let waited = await_dependencies(&engine, "t1", &app, &HashMap::new(), SHORT, POLL).await;
    assert!(waited.unwrap().unwrap_err().contains("ghost"));
}

#[tokio::test]
async fn an_unreachable_engine_is_retried_not_failed() {
    let engine = MemoryEngine::default();
    let db = definition(
        serde_json::json!({"name": "db", "image": "h/d:1", "memory": 8,
        "healthCheck": {"command": ["CMD", "true"]}}),
    );
    let app = definition(
        serde_json::json!({"name": "app", "image": "h/a:1", "memory": 8,
        "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}]}),
    );
    let mut r = task(vec![db, app.clone()]);
    let ids = create_all(&engine, &mut r).await;
    engine.unreachable.store(true, Ordering::SeqCst);
    let waited = await_dependencies(&engine, "t1", &app, &ids, SHORT, POLL).await;
    assert!(
        matches!(waited, Err(EngineError::Unavailable(_))),
        "{waited:?}"
    );
    engine.unreachable.store(false, Ordering::SeqCst);
    engine.start(&ids["db"]).await.unwrap();
    engine.set(&ids["db"], |s| s.health = HealthStatus::Healthy);
    assert_eq!(
        await_dependencies(&engine, "t1", &app, &ids, SHORT, POLL)
            .await
            .unwrap(),
        Ok(())
    );
}

/// Running containers without a health check are not inspected; the others
/// are, and missing ones are seen as missing.
#[tokio::test]
async fn the_watch_inspects_only_what_can_have_changed() {
    let engine = MemoryEngine::default();
    let web = definition(
        serde_json::json!({"name": "web", "image": "h/w:1", "memory": 8,
        "healthCheck": {"command": ["CMD", "true"]}}),
    );
    let log = definition(
        serde_json::json!({"name": "log", "image": "h/l:1", "memory": 8, "essential": false}),
    );
    let job = definition(
        serde_json::json!({"name": "job", "image": "h/j:1", "memory": 8, "essential": false}),
    );
    let mut r = task(vec![web, log, job]);
    let ids = create_all(&engine, &mut r).await;
    for id in ids.values() {
        engine.start(id).await.unwrap();
    }
    engine.exit(&ids["job"], 0);
    engine.vanish(&ids["log"]);
    r.task.last_status = TaskStatus::Running;
    let listed = engine.list(LABEL_INSTANCE, "here").await.unwrap();
    let seen = look(&engine, &r, &listed).await.unwrap();
    assert_eq!(seen.get("web"), Some(&Seen::Running(HealthStatus::Unknown)));
    assert_eq!(seen.get("log"), Some(&Seen::Missing));
    assert_eq!(
        seen.get("job"),
        Some(&Seen::Ended {
            exit_code: Some(0),
            oom_killed: false
        })
    );
    // Without a health check, a running container is left alone.
    r.plan[0].health_check = None;
    let before = engine.calls().len();
    let seen = look(&engine, &r, &listed).await.unwrap();
    assert!(!seen.contains_key("web"));
    let inspected: Vec<String> = engine.calls()[before..]
        .iter()
        .filter(|c| c.starts_with("inspect"))
        .cloned()
        .collect();
    assert_eq!(inspected, [format!("inspect {}", ids["job"])]);
}

/// A task's whole life on the in-memory engine: started in dependency
/// order, watched, stopped when its essential container exits.
#[tokio::test]
async fn a_task_lives_and_dies_by_its_essential_container() {
    let engine = MemoryEngine::default();
    let init = definition(
        serde_json::json!({"name": "init", "image": "h/i:1", "memory": 8, "essential": false}),
    );
    let app = definition(
        serde_json::json!({"name": "app", "image": "h/a:1", "memory": 8,
        "dependsOn": [{"containerName": "init", "condition": "COMPLETE"}]}),
    );
    let mut r = task(vec![app, init]);
    assert_eq!(lifecycle::step(&r), Step::Start);
    lifecycle::pulling(&mut r, &Default::default(), 1.0);
    lifecycle::activating(&mut r, 2.0);
    let ids = create_all(&engine, &mut r).await;
    let plan = r.plan.clone();
    for c in lifecycle::start_order(&plan) {
        assert!(!lifecycle::already_started(&r, &c.name));
        let waited = await_dependencies(&engine, "t1", c, &ids, SHORT, POLL)
            .await
            .unwrap();
        assert_eq!(waited, Ok(()), "{}", c.name);
        engine.start(&ids[&c.name]).await.unwrap();
        lifecycle::container_started(&mut r, &c.name, &[]);
        if c.name == "init" {
            engine.exit(&ids["init"], 0);
        }
    }
    lifecycle::running(&mut r, 3.0);
    let starts: Vec<String> = engine
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("start"))
        .collect();
    assert_eq!(
        starts,
        [
            format!("start {}", ids["init"]),
            format!("start {}", ids["app"])
        ]
    );

    // The sidecar's exit is recorded, the task runs on.
    assert_eq!(lifecycle::step(&r), Step::Watch);
    let listed = engine.list(LABEL_TASK, "t1").await.unwrap();
    let seen = look(&engine, &r, &listed).await.unwrap();
    let t = lifecycle::observe(&mut r, &seen, 4.0);
    assert!(t.changed && !t.stop);
    assert_eq!(lifecycle::step(&r), Step::Watch);

    // The essential container exits: the task is bound to stop.
    engine.exit(&ids["app"], 2);
    let listed = engine.list(LABEL_TASK, "t1").await.unwrap();
    let seen = look(&engine, &r, &listed).await.unwrap();
    assert!(lifecycle::observe(&mut r, &seen, 5.0).stop);
    assert_eq!(r.task.desired_status, DesiredStatus::Stopped);
    assert_eq!(r.task.stop_code, Some(StopCode::EssentialContainerExited));
    assert_eq!(lifecycle::step(&r), Step::Stop);
    lifecycle::stopping(&mut r, TaskStatus::Deprovisioning, 6.0);
    let mut inspected = HashMap::new();
    for l in &listed {
        inspected.insert(l.container.clone(), engine.inspect(&l.id).await.unwrap());
    }
    lifecycle::stopped(&mut r, &inspected, 6.0, 7.0);
    assert!(!r.is_live());
    let app = r.task.containers.iter().find(|c| c.name == "app").unwrap();
    assert_eq!(app.exit_code, Some(2));
}
