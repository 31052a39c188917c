//! Service auto scaling's API (Application Auto Scaling, `AnyScaleFrontendService.*`)
//! over real HTTP against a real `wharf serve`, with requests signed by the
//! AWS SDKs' own SigV4 signer for `application-autoscaling`: the shapes
//! botocore's model gives, the errors, and who may see and change a
//! service's scalable target (those who may push its images). No Docker
//! Engine is needed: services are created, never run (the runner points at
//! a socket that does not exist). The scaling itself is covered by the
//! evaluator's unit tests and `tests/e2e/autoscaling.sh`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use aws_sdk_ecs::config::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use common::free_port;
use serde_json::{Value, json};

const NO_DOCKER: &str = "/nonexistent/wharf-test/docker.sock";
const SCALING: &str = "AnyScaleFrontendService.";
const ECS: &str = "AmazonEC2ContainerServiceV20141113.";

/// alice deploys `team/*`; carol deploys `pub/*` only; bob may only pull `pub/*`.
const USERS: [&str; 3] = ["alice", "bob", "carol"];

struct Wharf {
    _dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    http: reqwest::Client,
    keys: Vec<(String, String)>,
}

impl Drop for Wharf {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Wharf {
    async fn start() -> Wharf {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = String::new();
        for user in USERS {
            let hash = wharf::auth::hash_password(&format!("{user}-password")).unwrap();
            config.push_str(&format!(
                "[[auth.users]]\nname = \"{user}\"\npassword_hash = \"{hash}\"\n"
            ));
        }
        config.push_str(&format!(
            r#"
[[auth.rules]]
who = ["alice"]
repositories = ["team/*"]
actions = ["*"]
[[auth.rules]]
who = ["bob"]
repositories = ["pub/*"]
actions = ["pull"]
[[auth.rules]]
who = ["carol"]
repositories = ["pub/*"]
actions = ["pull", "push"]
[runner]
docker_host = "unix://{NO_DOCKER}"
max_desired_count = 20
[gc]
interval_seconds = 0
"#
        ));
        std::fs::write(dir.path().join("wharf.toml"), config).unwrap();
        let store = wharf::storage::SqlMetadata::open(&wharf::storage::Database::Sqlite {
            path: dir.path().join("metadata.db"),
            readers: 1,
        })
        .await
        .unwrap();
        let names: Vec<String> = USERS.iter().map(|u| u.to_string()).collect();
        let secrets = wharf::auth::SecretsKey::load(&dir.path().join("secrets-key"), true).unwrap();
        let mut keys = Vec::new();
        for user in USERS {
            keys.push(
                wharf::admin::create_access_key(
                    &store,
                    &secrets,
                    user,
                    &names,
                    wharf::admin::By::unrecorded(),
                )
                .await
                .unwrap(),
            );
        }
        drop(store);
        let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--config")
            .arg(dir.path().join("wharf.toml"))
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wharf = Wharf {
            _dir: dir,
            port,
            child: Some(child),
            http: reqwest::Client::new(),
            keys,
        };
        for _ in 0..200 {
            if wharf.http.get(wharf.url("/healthz")).send().await.is_ok() {
                return wharf;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("wharf did not come up");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Calls `target` as `user` (unsigned when `None`), signed for `service`;
    /// the status and the JSON body.
    async fn call(
        &self,
        user: Option<&str>,
        service: &str,
        target: &str,
        body: Value,
    ) -> (u16, Value) {
        let body = body.to_string();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), format!("127.0.0.1:{}", self.port)),
            ("content-type".into(), "application/x-amz-json-1.1".into()),
            ("x-amz-target".into(), target.into()),
        ];
        if let Some(user) = user {
            let (id, secret) = &self.keys[USERS.iter().position(|u| *u == user).unwrap()];
            let identity = Credentials::new(id, secret, None, None, "test").into();
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name(service)
                .time(SystemTime::now())
                .settings(SigningSettings::default())
                .build()
                .unwrap()
                .into();
            let request = SignableRequest::new(
                "POST",
                self.url("/"),
                headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                SignableBody::Bytes(body.as_bytes()),
            )
            .unwrap();
            let (instructions, _) = sign(request, &params).unwrap().into_parts();
            let added: Vec<(String, String)> = instructions
                .headers()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            headers.extend(added);
        }
        let mut request = self.http.post(self.url("/"));
        for (name, value) in headers.iter().filter(|(k, _)| k != "host") {
            request = request.header(name, value);
        }
        let r = request.body(body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn scaling(&self, user: &str, operation: &str, body: Value) -> (u16, Value) {
        self.call(
            Some(user),
            "application-autoscaling",
            &format!("{SCALING}{operation}"),
            body,
        )
        .await
    }

    async fn ecs(&self, user: &str, operation: &str, body: Value) -> Value {
        let (status, out) = self
            .call(Some(user), "ecs", &format!("{ECS}{operation}"), body)
            .await;
        assert_eq!(status, 200, "{operation}: {out}");
        out
    }

    /// A service of `user` named `name` running an image of `repo`, with 1 task.
    async fn service(&self, user: &str, name: &str, repo: &str) {
        let image = format!("localhost:{}/{repo}:1", self.port);
        self.ecs(
            user,
            "RegisterTaskDefinition",
            json!({"family": name, "networkMode": "none",
                   "containerDefinitions": [{"name": "main", "image": image, "memory": 32}]}),
        )
        .await;
        self.ecs(
            user,
            "CreateService",
            json!({"serviceName": name, "taskDefinition": name, "desiredCount": 1}),
        )
        .await;
    }
}

fn error_type(out: &Value) -> &str {
    out["__type"].as_str().unwrap_or_default()
}

fn register(resource: &str, min: i64, max: i64) -> Value {
    json!({"ServiceNamespace": "ecs", "ResourceId": resource,
           "ScalableDimension": "ecs:service:DesiredCount",
           "MinCapacity": min, "MaxCapacity": max})
}

fn cpu_policy(resource: &str, name: &str, target: f64) -> Value {
    json!({"PolicyName": name, "ServiceNamespace": "ecs", "ResourceId": resource,
           "ScalableDimension": "ecs:service:DesiredCount",
           "PolicyType": "TargetTrackingScaling",
           "TargetTrackingScalingPolicyConfiguration": {
               "TargetValue": target,
               "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
               "ScaleOutCooldown": 5}})
}

#[tokio::test]
async fn targets_and_policies_have_their_shapes() {
    let w = Wharf::start().await;
    w.service("alice", "web", "team/web").await;
    let resource = "service/default/web";

    let (status, out) = w
        .scaling("alice", "RegisterScalableTarget", register(resource, 1, 3))
        .await;
    assert_eq!(status, 200, "{out}");
    let arn = out["ScalableTargetARN"].as_str().unwrap().to_string();
    assert!(
        arn.starts_with("arn:aws:application-autoscaling:us-east-1:"),
        "{arn}"
    );
    // Re-registering updates, with only what it names.
    let (status, out) = w
        .scaling(
            "alice",
            "RegisterScalableTarget",
            json!({"ServiceNamespace": "ecs", "ResourceId": resource,
                   "ScalableDimension": "ecs:service:DesiredCount", "MaxCapacity": 5,
                   "SuspendedState": {"DynamicScalingInSuspended": true}}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["ScalableTargetARN"], arn.as_str());
    let (_, out) = w
        .scaling(
            "alice",
            "DescribeScalableTargets",
            json!({"ServiceNamespace": "ecs", "ResourceIds": [resource]}),
        )
        .await;
    let target = &out["ScalableTargets"][0];
    assert_eq!(target["ResourceId"], resource);
    assert_eq!(target["ScalableDimension"], "ecs:service:DesiredCount");
    assert_eq!(target["MinCapacity"], 1);
    assert_eq!(target["MaxCapacity"], 5);
    assert_eq!(target["SuspendedState"]["DynamicScalingInSuspended"], true);
    assert_eq!(
        target["SuspendedState"]["DynamicScalingOutSuspended"],
        false
    );
    assert_eq!(target["ScalableTargetARN"], arn.as_str());
    assert!(target["CreationTime"].as_f64().unwrap() > 1.6e9);
    assert!(
        target["RoleARN"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:iam::")
    );

    let (status, out) = w
        .scaling(
            "alice",
            "PutScalingPolicy",
            cpu_policy(resource, "cpu50", 50.0),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let policy_arn = out["PolicyARN"].as_str().unwrap().to_string();
    assert!(
        policy_arn.contains(":scalingPolicy:")
            && policy_arn.ends_with(":resource/ecs/service/default/web:policyName/cpu50"),
        "{policy_arn}"
    );
    let alarms = out["Alarms"].as_array().unwrap();
    assert_eq!(alarms.len(), 2);
    let high = alarms[0]["AlarmName"].as_str().unwrap();
    let low = alarms[1]["AlarmName"].as_str().unwrap();
    assert!(
        high.starts_with("TargetTracking-service/default/web-AlarmHigh-"),
        "{high}"
    );
    assert!(
        low.starts_with("TargetTracking-service/default/web-AlarmLow-"),
        "{low}"
    );
    assert!(
        alarms[0]["AlarmARN"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":alarm:{high}"))
    );

    let (_, out) = w
        .scaling(
            "alice",
            "DescribeScalingPolicies",
            json!({"ServiceNamespace": "ecs", "ResourceId": resource}),
        )
        .await;
    let policy = &out["ScalingPolicies"][0];
    assert_eq!(policy["PolicyName"], "cpu50");
    assert_eq!(policy["PolicyARN"], policy_arn.as_str());
    assert_eq!(policy["PolicyType"], "TargetTrackingScaling");
    let c = &policy["TargetTrackingScalingPolicyConfiguration"];
    assert_eq!(c["TargetValue"], 50.0);
    assert_eq!(c["ScaleOutCooldown"], 5);
    assert_eq!(c["ScaleInCooldown"], 300, "the default");
    assert_eq!(c["DisableScaleIn"], false);
    assert_eq!(
        c["PredefinedMetricSpecification"]["PredefinedMetricType"],
        "ECSServiceAverageCPUUtilization"
    );

    // Paging.
    w.scaling(
        "alice",
        "PutScalingPolicy",
        cpu_policy(resource, "cpu70", 70.0),
    )
    .await;
    let (_, out) = w
        .scaling(
            "alice",
            "DescribeScalingPolicies",
            json!({"ServiceNamespace": "ecs", "MaxResults": 1}),
        )
        .await;
    assert_eq!(out["ScalingPolicies"].as_array().unwrap().len(), 1);
    let token = out["NextToken"].as_str().unwrap().to_string();
    let (_, out) = w
        .scaling(
            "alice",
            "DescribeScalingPolicies",
            json!({"ServiceNamespace": "ecs", "MaxResults": 1, "NextToken": token}),
        )
        .await;
    assert_eq!(out["ScalingPolicies"][0]["PolicyName"], "cpu70");
    assert!(out["NextToken"].is_null());

    let (_, out) = w
        .scaling(
            "alice",
            "DescribeScalingActivities",
            json!({"ServiceNamespace": "ecs", "ResourceId": resource}),
        )
        .await;
    assert_eq!(out["ScalingActivities"], json!([]));

    let (status, _) = w
        .scaling(
            "alice",
            "DeleteScalingPolicy",
            json!({"PolicyName": "cpu70", "ServiceNamespace": "ecs", "ResourceId": resource,
                   "ScalableDimension": "ecs:service:DesiredCount"}),
        )
        .await;
    assert_eq!(status, 200);
    // Deregistering deletes the remaining policy with the target.
    let (status, _) = w
        .scaling(
            "alice",
            "DeregisterScalableTarget",
            json!({"ServiceNamespace": "ecs", "ResourceId": resource,
                   "ScalableDimension": "ecs:service:DesiredCount"}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, out) = w
        .scaling(
            "alice",
            "DescribeScalingPolicies",
            json!({"ServiceNamespace": "ecs"}),
        )
        .await;
    assert_eq!(out["ScalingPolicies"], json!([]));
    let (_, out) = w
        .scaling(
            "alice",
            "DescribeScalableTargets",
            json!({"ServiceNamespace": "ecs"}),
        )
        .await;
    assert_eq!(out["ScalableTargets"], json!([]));
}

#[tokio::test]
async fn errors_have_their_names() {
    let w = Wharf::start().await;
    w.service("alice", "web", "team/web").await;
    let resource = "service/default/web";
    let cases: Vec<(&str, Value, &str)> = vec![
        // An unknown service, or a malformed ResourceId.
        (
            "RegisterScalableTarget",
            register("service/default/nope", 1, 2),
            "ValidationException",
        ),
        (
            "RegisterScalableTarget",
            register("service/web", 1, 2),
            "ValidationException",
        ),
        // Another namespace or dimension.
        (
            "RegisterScalableTarget",
            json!({"ServiceNamespace": "dynamodb", "ResourceId": resource,
                   "ScalableDimension": "ecs:service:DesiredCount", "MinCapacity": 1, "MaxCapacity": 2}),
            "ValidationException",
        ),
        (
            "RegisterScalableTarget",
            json!({"ServiceNamespace": "ecs", "ResourceId": resource,
                   "ScalableDimension": "ecs:service:Count", "MinCapacity": 1, "MaxCapacity": 2}),
            "ValidationException",
        ),
        // Capacities: both on first registration, ordered, within max_desired_count.
        (
            "RegisterScalableTarget",
            json!({"ServiceNamespace": "ecs", "ResourceId": resource,
                   "ScalableDimension": "ecs:service:DesiredCount", "MaxCapacity": 2}),
            "ValidationException",
        ),
        (
            "RegisterScalableTarget",
            register(resource, 3, 2),
            "ValidationException",
        ),
        (
            "RegisterScalableTarget",
            register(resource, -1, 2),
            "ValidationException",
        ),
        (
            "RegisterScalableTarget",
            register(resource, 1, 21),
            "ValidationException",
        ),
        // A policy without a target.
        (
            "PutScalingPolicy",
            cpu_policy(resource, "cpu", 50.0),
            "ObjectNotFoundException",
        ),
        (
            "DeregisterScalableTarget",
            json!({"ServiceNamespace": "ecs", "ResourceId": resource,
                   "ScalableDimension": "ecs:service:DesiredCount"}),
            "ObjectNotFoundException",
        ),
        (
            "DeleteScalingPolicy",
            json!({"PolicyName": "cpu", "ServiceNamespace": "ecs", "ResourceId": resource,
                   "ScalableDimension": "ecs:service:DesiredCount"}),
            "ObjectNotFoundException",
        ),
    ];
    for (operation, body, want) in cases {
        let (status, out) = w.scaling("alice", operation, body.clone()).await;
        assert_eq!(status, 400, "{operation} {body}: {out}");
        assert_eq!(error_type(&out), want, "{operation} {body}: {out}");
        assert!(out["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    let (status, _) = w
        .scaling("alice", "RegisterScalableTarget", register(resource, 1, 3))
        .await;
    assert_eq!(status, 200);
    let mut step = cpu_policy(resource, "step", 50.0);
    step["PolicyType"] = json!("StepScaling");
    let mut unnamed_type = cpu_policy(resource, "default", 50.0);
    unnamed_type.as_object_mut().unwrap().remove("PolicyType");
    let mut custom = cpu_policy(resource, "custom", 50.0);
    custom["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"] =
        json!({"MetricName": "m", "Namespace": "n", "Statistic": "Average"});
    let mut alb = cpu_policy(resource, "alb", 100.0);
    alb["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"] =
        json!({"PredefinedMetricType": "ALBRequestCountPerTarget"});
    let mut unknown_metric = cpu_policy(resource, "rds", 50.0);
    unknown_metric["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"] =
        json!({"PredefinedMetricType": "RDSReaderAverageCPUUtilization"});
    for (body, want) in [
        (step, "StepScaling"),
        (unnamed_type, "StepScaling"),
        (custom, "CustomizedMetricSpecification"),
        (cpu_policy(resource, "zero", 0.0), "TargetValue"),
        (alb, "ResourceLabel"),
        (unknown_metric, "PredefinedMetricType"),
    ] {
        let (status, out) = w.scaling("alice", "PutScalingPolicy", body.clone()).await;
        assert_eq!(status, 400, "{body}: {out}");
        assert_eq!(error_type(&out), "ValidationException", "{body}: {out}");
        assert!(
            out["message"].as_str().unwrap().contains(want),
            "{want}: {out}"
        );
    }
    let mut alb = cpu_policy(resource, "alb", 100.0);
    alb["TargetTrackingScalingPolicyConfiguration"]["PredefinedMetricSpecification"] = json!({
        "PredefinedMetricType": "ALBRequestCountPerTarget",
        "ResourceLabel": "app/lb/50dc6c495c0c9188/targetgroup/tg/943f017f100becff"});
    let (status, out) = w.scaling("alice", "PutScalingPolicy", alb).await;
    assert_eq!(status, 200, "{out}");

    let (status, out) = w.scaling("alice", "PutScheduledAction", json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(error_type(&out), "UnknownOperationException", "{out}");
}

#[tokio::test]
async fn a_target_is_the_services_owners() {
    let w = Wharf::start().await;
    w.service("alice", "web", "team/web").await;
    w.service("carol", "site", "pub/site").await;
    let resource = "service/default/web";
    let (status, _) = w
        .scaling("alice", "RegisterScalableTarget", register(resource, 1, 3))
        .await;
    assert_eq!(status, 200);
    w.scaling(
        "alice",
        "PutScalingPolicy",
        cpu_policy(resource, "cpu", 50.0),
    )
    .await;

    // Anonymous callers are refused at the door.
    let (status, out) = w
        .call(
            None,
            "application-autoscaling",
            &format!("{SCALING}DescribeScalableTargets"),
            json!({"ServiceNamespace": "ecs"}),
        )
        .await;
    assert_eq!(status, 403, "{out}");
    assert_eq!(error_type(&out), "MissingAuthenticationTokenException");

    // Who may not push the service's images sees nothing of it and changes
    // nothing, as if it did not exist: bob (pull elsewhere), carol (a
    // deployer of other repositories).
    for user in ["bob", "carol"] {
        for (operation, body, list) in [
            (
                "DescribeScalableTargets",
                json!({"ServiceNamespace": "ecs"}),
                "ScalableTargets",
            ),
            (
                "DescribeScalingPolicies",
                json!({"ServiceNamespace": "ecs", "ResourceId": resource}),
                "ScalingPolicies",
            ),
            (
                "DescribeScalingActivities",
                json!({"ServiceNamespace": "ecs"}),
                "ScalingActivities",
            ),
        ] {
            let (status, out) = w.scaling(user, operation, body).await;
            assert_eq!(status, 200, "{user} {operation}: {out}");
            assert_eq!(out[list], json!([]), "{user} {operation}");
        }
        for (operation, body, want) in [
            (
                "RegisterScalableTarget",
                register(resource, 0, 10),
                "ValidationException",
            ),
            (
                "PutScalingPolicy",
                cpu_policy(resource, "evil", 1.0),
                "ObjectNotFoundException",
            ),
            (
                "DeleteScalingPolicy",
                json!({"PolicyName": "cpu", "ServiceNamespace": "ecs", "ResourceId": resource,
                       "ScalableDimension": "ecs:service:DesiredCount"}),
                "ObjectNotFoundException",
            ),
            (
                "DeregisterScalableTarget",
                json!({"ServiceNamespace": "ecs", "ResourceId": resource,
                       "ScalableDimension": "ecs:service:DesiredCount"}),
                "ObjectNotFoundException",
            ),
        ] {
            let (status, out) = w.scaling(user, operation, body).await;
            assert_eq!(status, 400, "{user} {operation}: {out}");
            assert_eq!(error_type(&out), want, "{user} {operation}: {out}");
        }
    }

    // carol's own service is hers to scale; alice's target is untouched.
    let (status, out) = w
        .scaling(
            "carol",
            "RegisterScalableTarget",
            register("service/default/site", 1, 2),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    let (_, out) = w
        .scaling(
            "carol",
            "DescribeScalableTargets",
            json!({"ServiceNamespace": "ecs"}),
        )
        .await;
    let seen: Vec<&str> = out["ScalableTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ResourceId"].as_str().unwrap())
        .collect();
    assert_eq!(seen, vec!["service/default/site"]);
    let (_, out) = w
        .scaling(
            "alice",
            "DescribeScalableTargets",
            json!({"ServiceNamespace": "ecs", "ResourceIds": [resource]}),
        )
        .await;
    assert_eq!(out["ScalableTargets"][0]["MinCapacity"], 1);
    assert_eq!(out["ScalableTargets"][0]["MaxCapacity"], 3);
    let (_, out) = w
        .scaling(
            "alice",
            "DescribeScalingPolicies",
            json!({"ServiceNamespace": "ecs"}),
        )
        .await;
    assert_eq!(out["ScalingPolicies"].as_array().unwrap().len(), 1);
}
