//! The ELBv2-compatible API over real HTTP against a real server: Query
//! requests (`POST /`, a form, `Action=…`) signed with the AWS SDKs' own
//! SigV4 signer for `elasticloadbalancing`, XML answers. The control plane
//! only: no listener binds a port here. The runner points at a Docker
//! socket that does not exist (the balancer runs with the runner; nothing
//! here starts a container).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers abort the test on failure"
)]

mod common;

use std::time::SystemTime;

use aws_sdk_ecr::config::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use common::TestServer;
use wharf::auth::{ConfigUser, Rule, hash_password};
use wharf::storage::SqlMetadata;

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const NO_DOCKER: &str = "/nonexistent/wharf-test/docker.sock";

/// olga may do everything everywhere (the operator); carol pushes `pub/*`
/// (a deployer); bob only pulls `pub/*`.
const USERS: [(&str, &str, &[&str]); 3] = [
    ("olga", "*", &["*"]),
    ("carol", "pub/*", &["pull", "push"]),
    ("bob", "pub/*", &["pull"]),
];

struct Fixture {
    server: TestServer,
    _dir: tempfile::TempDir,
    keys: Vec<(String, String, String)>,
}

/// A signed call's outcome: status and XML body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    /// Every text of `<tag>…</tag>` (tags that do not nest), in order.
    fn all(&self, tag: &str) -> Vec<String> {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut out = Vec::new();
        let mut rest = self.body.as_str();
        while let Some(start) = rest.find(&open) {
            rest = &rest[start + open.len()..];
            let end = rest.find(&close).unwrap();
            out.push(rest[..end].to_string());
            rest = &rest[end + close.len()..];
        }
        out
    }

    fn one(&self, tag: &str) -> String {
        let all = self.all(tag);
        assert_eq!(all.len(), 1, "one <{tag}> in {}", self.body);
        all.into_iter().next().unwrap()
    }

    fn code(&self) -> String {
        self.one("Code")
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(dir.path(), |c| {
        c.auth.users = USERS
            .iter()
            .map(|(name, _, _)| ConfigUser {
                name: name.to_string(),
                password_hash: hash_password(&format!("{name}-password")).unwrap(),
                groups: vec![],
            })
            .collect();
        c.auth.rules = USERS
            .iter()
            .map(|(name, repos, actions)| Rule {
                who: vec![name.to_string()],
                repositories: vec![repos.to_string()],
                actions: actions.iter().map(|a| a.to_string()).collect(),
                catalog: false,
            })
            .collect();
        c.runner.enabled = true;
        c.runner.docker_host = NO_DOCKER.into();
    })
    .await;
    let store = SqlMetadata::open(&server.database).await.unwrap();
    let names: Vec<String> = USERS.iter().map(|(n, _, _)| n.to_string()).collect();
    let mut keys = Vec::new();
    for (user, _, _) in USERS {
        let (id, secret) = wharf::admin::create_access_key(
            &store,
            server.auth.login.secrets(),
            user,
            &names,
            wharf::admin::By::unrecorded(),
        )
        .await
        .unwrap();
        keys.push((user.to_string(), id, secret));
    }
    Fixture {
        server,
        _dir: dir,
        keys,
    }
}

impl Fixture {
    /// The TCP ports the embedded container instance reserves (ECS's
    /// registered `PORTS` resource), asked as the operator.
    async fn embedded_ports(&self) -> Vec<String> {
        use aws_sdk_ecs::config::{BehaviorVersion, Region};
        let (_, id, secret) = &self.keys[0];
        let config = aws_sdk_ecs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(self.server.url(""))
            .credentials_provider(Credentials::new(id, secret, None, None, "wharf-test"))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        let ecs = aws_sdk_ecs::Client::from_conf(config);
        let arns = ecs
            .list_container_instances()
            .send()
            .await
            .unwrap()
            .container_instance_arns()
            .to_vec();
        let described = ecs
            .describe_container_instances()
            .set_container_instances(Some(arns))
            .send()
            .await
            .unwrap();
        let instance = &described.container_instances()[0];
        instance
            .registered_resources()
            .iter()
            .find(|r| r.name() == Some("PORTS"))
            .map(|r| r.string_set_value().to_vec())
            .unwrap_or_default()
    }

    /// `Action` with `params`, signed as `user` (`None`: not signed).
    async fn call(&self, user: Option<&str>, action: &str, params: &[(&str, &str)]) -> Answer {
        let secret = user.map(|u| {
            let (_, id, secret) = self.keys.iter().find(|(n, _, _)| n == u).unwrap();
            (id.clone(), secret.clone())
        });
        self.send(secret, action, params).await
    }

    async fn send(
        &self,
        key: Option<(String, String)>,
        action: &str,
        params: &[(&str, &str)],
    ) -> Answer {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", action)
            .append_pair("Version", "2015-12-01");
        for (k, v) in params {
            form.append_pair(k, v);
        }
        let body = form.finish();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), self.server.addr.to_string()),
            ("content-type".into(), FORM.into()),
        ];
        if let Some((id, secret)) = key {
            let identity = Credentials::new(&id, &secret, None, None, "test").into();
            let params = aws_sigv4::sign::v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("elasticloadbalancing")
                .time(SystemTime::now())
                .settings(SigningSettings::default())
                .build()
                .unwrap()
                .into();
            let url = self.server.url("/");
            let request = SignableRequest::new(
                "POST",
                &url,
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
        let mut request = self.server.http.post(self.server.url("/"));
        for (name, value) in headers.iter().filter(|(k, _)| k != "host") {
            request = request.header(name, value);
        }
        let r = request.body(body).send().await.unwrap();
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let body = r.text().await.unwrap();
        assert_eq!(content_type.as_deref(), Some("text/xml"), "{body}");
        Answer { status, body }
    }

    /// A call by the operator that must succeed.
    async fn ok(&self, action: &str, params: &[(&str, &str)]) -> Answer {
        let a = self.call(Some("olga"), action, params).await;
        assert_eq!(a.status, 200, "{action}: {}", a.body);
        assert!(
            a.body.starts_with(&format!(
                "<{action}Response xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><{action}Result>"
            )),
            "{}",
            a.body
        );
        assert_eq!(a.all("RequestId").len(), 1, "{}", a.body);
        a
    }

    /// A call by the operator that must fail with `code` (400).
    async fn fails(&self, action: &str, params: &[(&str, &str)], code: &str) -> Answer {
        let a = self.call(Some("olga"), action, params).await;
        assert_eq!(
            (a.status, a.code()),
            (400, code.to_string()),
            "{action}: {}",
            a.body
        );
        assert!(a.body.starts_with("<ErrorResponse"), "{}", a.body);
        assert_eq!(a.one("Type"), "Sender");
        a
    }

    async fn create_group(&self, name: &str, protocol: &str, port: &str, kind: &str) -> String {
        self.ok(
            "CreateTargetGroup",
            &[
                ("Name", name),
                ("Protocol", protocol),
                ("Port", port),
                ("TargetType", kind),
            ],
        )
        .await
        .one("TargetGroupArn")
    }

    async fn health(&self, group: &str, targets: &[(&str, &str)]) -> Vec<(String, String, String)> {
        let mut params = vec![("TargetGroupArn".to_string(), group.to_string())];
        for (i, (id, port)) in targets.iter().enumerate() {
            params.push((format!("Targets.member.{}.Id", i + 1), id.to_string()));
            params.push((format!("Targets.member.{}.Port", i + 1), port.to_string()));
        }
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let a = self.ok("DescribeTargetHealth", &params).await;
        let ids = a.all("Id");
        let ports = a.all("Port");
        let states = a.all("State");
        assert_eq!(ids.len(), states.len());
        ids.into_iter()
            .zip(ports)
            .zip(states)
            .map(|((i, p), s)| (i, p, s))
            .collect()
    }
}

fn triple(id: &str, port: &str, state: &str) -> (String, String, String) {
    (id.into(), port.into(), state.into())
}

#[tokio::test]
async fn target_groups_targets_load_balancers_and_listeners() {
    let f = fixture().await;

    // A target group with ELB's defaults.
    let created = f
        .ok(
            "CreateTargetGroup",
            &[
                ("Name", "web"),
                ("Protocol", "HTTP"),
                ("Port", "80"),
                ("TargetType", "ip"),
                ("HealthCheckPath", "/health"),
                ("Tags.member.1.Key", "team"),
                ("Tags.member.1.Value", "a&b"),
            ],
        )
        .await;
    let web = created.one("TargetGroupArn");
    assert!(
        web.starts_with("arn:aws:elasticloadbalancing:us-east-1:"),
        "{web}"
    );
    assert!(web.contains(":targetgroup/web/"), "{web}");
    for (tag, value) in [
        ("TargetGroupName", "web"),
        ("Protocol", "HTTP"),
        ("Port", "80"),
        ("HealthCheckProtocol", "HTTP"),
        ("HealthCheckPort", "traffic-port"),
        ("HealthCheckEnabled", "true"),
        ("HealthCheckPath", "/health"),
        ("HealthCheckIntervalSeconds", "30"),
        ("HealthCheckTimeoutSeconds", "6"),
        ("HealthyThresholdCount", "5"),
        ("UnhealthyThresholdCount", "2"),
        ("HttpCode", "200"),
        ("TargetType", "ip"),
    ] {
        assert_eq!(created.one(tag), value, "{tag}");
    }

    // The same name and settings: the same group (ELB is idempotent);
    // other settings: a duplicate.
    let again = f
        .ok(
            "CreateTargetGroup",
            &[
                ("Name", "web"),
                ("Protocol", "HTTP"),
                ("Port", "80"),
                ("TargetType", "ip"),
                ("HealthCheckPath", "/health"),
            ],
        )
        .await;
    assert_eq!(again.one("TargetGroupArn"), web);
    f.fails(
        "CreateTargetGroup",
        &[
            ("Name", "web"),
            ("Protocol", "HTTP"),
            ("Port", "81"),
            ("TargetType", "ip"),
        ],
        "DuplicateTargetGroupName",
    )
    .await;

    // Describe by name, by ARN, all (paged); unknown names are not found.
    let tcp = f.create_group("tcp-pool", "TCP", "5432", "ip").await;
    let by_name = f
        .ok("DescribeTargetGroups", &[("Names.member.1", "web")])
        .await;
    assert_eq!(by_name.one("TargetGroupArn"), web);
    let by_arn = f
        .ok(
            "DescribeTargetGroups",
            &[("TargetGroupArns.member.1", &tcp)],
        )
        .await;
    assert_eq!(by_arn.one("TargetGroupName"), "tcp-pool");
    assert_eq!(by_arn.one("HealthCheckProtocol"), "TCP");
    assert_eq!(by_arn.one("HealthCheckTimeoutSeconds"), "10");
    assert!(by_arn.all("HttpCode").is_empty(), "{}", by_arn.body);
    let first = f.ok("DescribeTargetGroups", &[("PageSize", "1")]).await;
    assert_eq!(first.one("TargetGroupName"), "tcp-pool");
    let marker = first.one("NextMarker");
    let second = f
        .ok(
            "DescribeTargetGroups",
            &[("PageSize", "1"), ("Marker", &marker)],
        )
        .await;
    assert_eq!(second.one("TargetGroupName"), "web");
    assert!(second.all("NextMarker").is_empty());
    f.fails(
        "DescribeTargetGroups",
        &[("Names.member.1", "web"), ("Names.member.2", "nope")],
        "TargetGroupNotFound",
    )
    .await;

    // Attributes: ELB's defaults, then changed.
    let attrs = f
        .ok("DescribeTargetGroupAttributes", &[("TargetGroupArn", &web)])
        .await;
    assert_eq!(
        attrs.all("Key"),
        [
            "deregistration_delay.timeout_seconds",
            "slow_start.duration_seconds",
            "load_balancing.algorithm.type"
        ]
    );
    assert_eq!(attrs.all("Value"), ["300", "0", "round_robin"]);
    let changed = f
        .ok(
            "ModifyTargetGroupAttributes",
            &[
                ("TargetGroupArn", &web),
                (
                    "Attributes.member.1.Key",
                    "deregistration_delay.timeout_seconds",
                ),
                ("Attributes.member.1.Value", "30"),
                ("Attributes.member.2.Key", "slow_start.duration_seconds"),
                ("Attributes.member.2.Value", "60"),
            ],
        )
        .await;
    assert_eq!(changed.all("Value"), ["30", "60", "round_robin"]);
    let attrs = f
        .ok("DescribeTargetGroupAttributes", &[("TargetGroupArn", &web)])
        .await;
    assert_eq!(attrs.all("Value"), ["30", "60", "round_robin"]);

    // Targets: registered at `initial`; one not registered is `unused`.
    f.ok(
        "RegisterTargets",
        &[
            ("TargetGroupArn", &web),
            ("Targets.member.1.Id", "127.0.1.1"),
            ("Targets.member.1.Port", "8080"),
            ("Targets.member.2.Id", "127.0.1.2"),
        ],
    )
    .await;
    let health = f
        .ok("DescribeTargetHealth", &[("TargetGroupArn", &web)])
        .await;
    assert_eq!(health.all("State"), ["initial", "initial"]);
    assert_eq!(health.all("Reason"), ["Elb.RegistrationInProgress"; 2]);
    assert_eq!(health.all("HealthCheckPort"), ["8080", "80"]);
    assert_eq!(
        f.health(&web, &[("127.0.1.9", "80")]).await,
        [triple("127.0.1.9", "80", "unused")]
    );
    let unused = f
        .ok(
            "DescribeTargetHealth",
            &[
                ("TargetGroupArn", &web),
                ("Targets.member.1.Id", "127.0.1.9"),
            ],
        )
        .await;
    assert_eq!(unused.one("Reason"), "Target.NotRegistered");
    f.fails(
        "RegisterTargets",
        &[
            ("TargetGroupArn", &web),
            ("Targets.member.1.Id", "not-an-ip"),
        ],
        "InvalidTarget",
    )
    .await;
    f.fails(
        "RegisterTargets",
        &[
            ("TargetGroupArn", &format!("{web}0")),
            ("Targets.member.1.Id", "127.0.1.3"),
        ],
        "TargetGroupNotFound",
    )
    .await;

    // Deregistering drains (unknown targets are ignored); registering a
    // draining target again starts it over.
    f.ok(
        "DeregisterTargets",
        &[
            ("TargetGroupArn", &web),
            ("Targets.member.1.Id", "127.0.1.1"),
            ("Targets.member.1.Port", "8080"),
            ("Targets.member.2.Id", "127.9.9.9"),
        ],
    )
    .await;
    assert_eq!(
        f.health(&web, &[]).await,
        [
            triple("127.0.1.1", "8080", "draining"),
            triple("127.0.1.2", "80", "initial")
        ]
    );
    let draining = f
        .ok(
            "DescribeTargetHealth",
            &[
                ("TargetGroupArn", &web),
                ("Targets.member.1.Id", "127.0.1.1"),
                ("Targets.member.1.Port", "8080"),
            ],
        )
        .await;
    assert_eq!(draining.one("Reason"), "Target.DeregistrationInProgress");
    f.ok(
        "RegisterTargets",
        &[
            ("TargetGroupArn", &web),
            ("Targets.member.1.Id", "127.0.1.1"),
            ("Targets.member.1.Port", "8080"),
        ],
    )
    .await;
    assert_eq!(
        f.health(&web, &[("127.0.1.1", "8080")]).await,
        [triple("127.0.1.1", "8080", "initial")]
    );

    // Health checks off: targets are `unavailable`.
    let modified = f
        .ok(
            "ModifyTargetGroup",
            &[("TargetGroupArn", &tcp), ("HealthCheckEnabled", "false")],
        )
        .await;
    assert_eq!(modified.one("HealthCheckEnabled"), "false");
    f.ok(
        "RegisterTargets",
        &[
            ("TargetGroupArn", &tcp),
            ("Targets.member.1.Id", "127.0.1.5"),
        ],
    )
    .await;
    let off = f
        .ok("DescribeTargetHealth", &[("TargetGroupArn", &tcp)])
        .await;
    assert_eq!(off.one("State"), "unavailable");
    assert_eq!(off.one("Reason"), "Target.HealthCheckDisabled");
    let modified = f
        .ok(
            "ModifyTargetGroup",
            &[
                ("TargetGroupArn", &web),
                ("HealthCheckIntervalSeconds", "10"),
                ("HealthCheckTimeoutSeconds", "5"),
                ("Matcher.HttpCode", "200-299"),
            ],
        )
        .await;
    assert_eq!(modified.one("HealthCheckIntervalSeconds"), "10");
    assert_eq!(modified.one("HttpCode"), "200-299");

    // An `instance` group takes container instance ids only.
    let instances = f
        .create_group("by-instance", "HTTP", "80", "instance")
        .await;
    f.fails(
        "RegisterTargets",
        &[
            ("TargetGroupArn", &instances),
            ("Targets.member.1.Id", "no-such-instance"),
        ],
        "InvalidTarget",
    )
    .await;

    // Load balancers: active at once, with a DNS name of ours.
    let lb = f
        .ok(
            "CreateLoadBalancer",
            &[("Name", "front"), ("Subnets.member.1", "subnet-1")],
        )
        .await;
    let front = lb.one("LoadBalancerArn");
    assert!(front.contains(":loadbalancer/app/front/"), "{front}");
    assert_eq!(lb.one("Code"), "active");
    assert_eq!(lb.one("Type"), "application");
    assert_eq!(lb.one("Scheme"), "internet-facing");
    let dns = lb.one("DNSName");
    assert!(
        dns.starts_with("front-") && dns.ends_with(".us-east-1.elb.localhost"),
        "{dns}"
    );
    let again = f.ok("CreateLoadBalancer", &[("Name", "front")]).await;
    assert_eq!(again.one("LoadBalancerArn"), front);
    f.fails(
        "CreateLoadBalancer",
        &[("Name", "front"), ("Type", "network")],
        "DuplicateLoadBalancerName",
    )
    .await;
    let net = f
        .ok("CreateLoadBalancer", &[("Name", "db"), ("Type", "network")])
        .await
        .one("LoadBalancerArn");
    assert!(net.contains(":loadbalancer/net/db/"), "{net}");
    let all = f.ok("DescribeLoadBalancers", &[]).await;
    assert_eq!(all.all("LoadBalancerName"), ["db", "front"]);
    let one = f
        .ok("DescribeLoadBalancers", &[("Names.member.1", "front")])
        .await;
    assert_eq!(one.one("LoadBalancerArn"), front);
    f.fails(
        "DescribeLoadBalancers",
        &[("Names.member.1", "back")],
        "LoadBalancerNotFound",
    )
    .await;

    // Listeners: one per port across every load balancer.
    let forward_web = [
        ("LoadBalancerArn", front.as_str()),
        ("Protocol", "HTTP"),
        ("Port", "18080"),
        ("DefaultActions.member.1.Type", "forward"),
        ("DefaultActions.member.1.TargetGroupArn", web.as_str()),
    ];
    let listener = f.ok("CreateListener", &forward_web).await;
    let http = listener.one("ListenerArn");
    assert!(http.contains(":listener/app/front/"), "{http}");
    assert_eq!(listener.all("TargetGroupArn"), [web.clone(), web.clone()]);
    f.fails("CreateListener", &forward_web, "DuplicateListener")
        .await;
    // The data plane binds the port on this host: the embedded container
    // instance reserves it, so no task is placed there with it.
    let mut reserved = false;
    for _ in 0..50 {
        if f.embedded_ports().await.contains(&"18080".to_string()) {
            reserved = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(reserved, "{:?}", f.embedded_ports().await);
    f.fails(
        "CreateListener",
        &[
            ("LoadBalancerArn", &net),
            ("Protocol", "TCP"),
            ("Port", "18080"),
            ("DefaultActions.member.1.Type", "forward"),
            (
                "DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn",
                &tcp,
            ),
        ],
        "DuplicateListener",
    )
    .await;
    let tcp_listener = f
        .ok(
            "CreateListener",
            &[
                ("LoadBalancerArn", &net),
                ("Protocol", "TCP"),
                ("Port", "15432"),
                ("DefaultActions.member.1.Type", "forward"),
                (
                    "DefaultActions.member.1.ForwardConfig.TargetGroups.member.1.TargetGroupArn",
                    &tcp,
                ),
            ],
        )
        .await
        .one("ListenerArn");
    assert!(tcp_listener.contains(":listener/net/db/"), "{tcp_listener}");
    let listed = f
        .ok("DescribeListeners", &[("LoadBalancerArn", &front)])
        .await;
    assert_eq!(listed.one("ListenerArn"), http);
    assert_eq!(listed.one("Port"), "18080");
    let in_use = f
        .ok("DescribeTargetGroups", &[("LoadBalancerArn", &front)])
        .await;
    assert_eq!(in_use.one("TargetGroupArn"), web);
    assert!(in_use.body.contains(&format!(
        "<LoadBalancerArns><member>{front}</member></LoadBalancerArns>"
    )));

    // A group a listener forwards to stays.
    f.fails(
        "DeleteTargetGroup",
        &[("TargetGroupArn", &web)],
        "ResourceInUse",
    )
    .await;

    // Deleting a listener, then a load balancer with its listeners.
    f.ok("DeleteListener", &[("ListenerArn", &http)]).await;
    f.fails(
        "DescribeListeners",
        &[("ListenerArns.member.1", &http)],
        "ListenerNotFound",
    )
    .await;
    f.fails(
        "DeleteListener",
        &[("ListenerArn", &http)],
        "ListenerNotFound",
    )
    .await;
    // The port is free again.
    let http = f
        .ok("CreateListener", &forward_web)
        .await
        .one("ListenerArn");
    f.ok("DeleteLoadBalancer", &[("LoadBalancerArn", &front)])
        .await;
    f.fails(
        "DescribeListeners",
        &[("ListenerArns.member.1", &http)],
        "ListenerNotFound",
    )
    .await;
    f.fails(
        "DescribeListeners",
        &[("LoadBalancerArn", &front)],
        "LoadBalancerNotFound",
    )
    .await;
    let left = f.ok("DescribeLoadBalancers", &[]).await;
    assert_eq!(left.all("LoadBalancerName"), ["db"]);

    // Now unused, the group goes.
    f.ok("DeleteTargetGroup", &[("TargetGroupArn", &web)]).await;
    f.fails(
        "DescribeTargetGroups",
        &[("Names.member.1", "web")],
        "TargetGroupNotFound",
    )
    .await;
}

#[tokio::test]
async fn invalid_requests() {
    let f = fixture().await;
    let group = |name: &'static str, extra: &'static [(&'static str, &'static str)]| {
        let mut params = vec![("Name", name), ("Protocol", "HTTP"), ("Port", "80")];
        params.extend_from_slice(extra);
        params
    };
    let invalid: &[(&str, &[(&str, &str)])] = &[
        ("-web", &[]),
        ("web-", &[]),
        ("web_1", &[]),
        ("abcdefghijklmnopqrstuvwxyz0123456", &[]),
        ("w", &[("HealthCheckIntervalSeconds", "4")]),
        ("w", &[("HealthCheckIntervalSeconds", "301")]),
        ("w", &[("HealthCheckTimeoutSeconds", "1")]),
        (
            "w",
            &[
                ("HealthCheckIntervalSeconds", "10"),
                ("HealthCheckTimeoutSeconds", "10"),
            ],
        ),
        ("w", &[("HealthyThresholdCount", "11")]),
        ("w", &[("UnhealthyThresholdCount", "1")]),
        ("w", &[("Matcher.HttpCode", "600")]),
        ("w", &[("HealthCheckPort", "0")]),
        ("w", &[("HealthCheckPath", "health")]),
        ("w", &[("TargetType", "lambda")]),
        ("w", &[("Port", "0")]),
    ];
    for (name, extra) in invalid {
        let mut params = group(name, &[]);
        params.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        params.extend_from_slice(extra);
        f.fails("CreateTargetGroup", &params, "ValidationError")
            .await;
    }
    f.fails(
        "CreateTargetGroup",
        &[("Name", "w"), ("Port", "80")],
        "ValidationError",
    )
    .await;
    f.fails(
        "CreateTargetGroup",
        &[("Name", "w"), ("Protocol", "HTTPS"), ("Port", "443")],
        "ValidationError",
    )
    .await;
    f.fails(
        "CreateTargetGroup",
        &[
            ("Name", "t"),
            ("Protocol", "TCP"),
            ("Port", "80"),
            ("HealthCheckPath", "/"),
        ],
        "ValidationError",
    )
    .await;

    let web = f.create_group("web", "HTTP", "80", "ip").await;
    let tcp = f.create_group("tcp", "TCP", "80", "ip").await;
    for (key, value) in [
        ("deregistration_delay.timeout_seconds", "3601"),
        ("deregistration_delay.timeout_seconds", "soon"),
        ("slow_start.duration_seconds", "10"),
        ("slow_start.duration_seconds", "901"),
        ("load_balancing.algorithm.type", "random"),
        ("stickiness.enabled", "true"),
    ] {
        f.fails(
            "ModifyTargetGroupAttributes",
            &[
                ("TargetGroupArn", &web),
                ("Attributes.member.1.Key", "slow_start.duration_seconds"),
                ("Attributes.member.1.Value", "30"),
                ("Attributes.member.2.Key", key),
                ("Attributes.member.2.Value", value),
            ],
            "ValidationError",
        )
        .await;
    }
    // Nothing of a refused change was applied.
    let attrs = f
        .ok("DescribeTargetGroupAttributes", &[("TargetGroupArn", &web)])
        .await;
    assert_eq!(attrs.all("Value"), ["300", "0", "round_robin"]);
    f.fails(
        "ModifyTargetGroup",
        &[
            ("TargetGroupArn", &web),
            ("HealthCheckTimeoutSeconds", "30"),
        ],
        "ValidationError",
    )
    .await;

    let net = f
        .ok("CreateLoadBalancer", &[("Name", "n"), ("Type", "network")])
        .await
        .one("LoadBalancerArn");
    let app = f
        .ok("CreateLoadBalancer", &[("Name", "a")])
        .await
        .one("LoadBalancerArn");
    f.fails(
        "CreateLoadBalancer",
        &[("Name", "x"), ("Type", "gateway")],
        "ValidationError",
    )
    .await;
    f.fails(
        "CreateLoadBalancer",
        &[("Name", "internal-x")],
        "ValidationError",
    )
    .await;
    let listener = |lb: &str, protocol: &'static str, group: &str| {
        vec![
            ("LoadBalancerArn".to_string(), lb.to_string()),
            ("Protocol".into(), protocol.into()),
            ("Port".into(), "18081".into()),
            ("DefaultActions.member.1.Type".into(), "forward".into()),
            (
                "DefaultActions.member.1.TargetGroupArn".into(),
                group.to_string(),
            ),
        ]
    };
    let cases = [
        (listener(&net, "HTTP", &web), "ValidationError"),
        (listener(&app, "TCP", &tcp), "ValidationError"),
        (listener(&app, "HTTP", &tcp), "InvalidConfigurationRequest"),
        (
            listener(&app, "HTTP", &format!("{web}0")),
            "TargetGroupNotFound",
        ),
        (
            listener(&format!("{app}0"), "HTTP", &web),
            "LoadBalancerNotFound",
        ),
    ];
    for (params, code) in cases {
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        f.fails("CreateListener", &params, code).await;
    }
    let fixed = [
        ("LoadBalancerArn", app.as_str()),
        ("Port", "18081"),
        ("DefaultActions.member.1.Type", "fixed-response"),
    ];
    f.fails("CreateListener", &fixed, "ValidationError").await;

    // Actions and versions this server does not know.
    f.fails("CreateRule", &[], "InvalidAction").await;
    let a = f.call(Some("olga"), "", &[]).await;
    assert_eq!((a.status, a.code()), (400, "InvalidAction".to_string()));
}

#[tokio::test]
async fn who_may_call_what() {
    let f = fixture().await;
    let group = f.create_group("web", "HTTP", "80", "ip").await;
    let lb = f
        .ok("CreateLoadBalancer", &[("Name", "front")])
        .await
        .one("LoadBalancerArn");

    // Unsigned, with auth required; a key that does not exist; a wrong secret.
    let a = f.call(None, "DescribeTargetGroups", &[]).await;
    assert_eq!(
        (a.status, a.code()),
        (403, "MissingAuthenticationToken".to_string())
    );
    let a = f
        .send(
            Some(("AKIANOSUCHKEY".into(), "x".into())),
            "DescribeTargetGroups",
            &[],
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (403, "InvalidClientTokenId".to_string())
    );
    let (_, id, _) = &f.keys[0];
    let a = f
        .send(
            Some((id.clone(), "wrong".into())),
            "DescribeTargetGroups",
            &[],
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (403, "SignatureDoesNotMatch".to_string())
    );

    let describes: [(&str, Vec<(&str, &str)>); 5] = [
        ("DescribeTargetGroups", vec![]),
        (
            "DescribeTargetGroupAttributes",
            vec![("TargetGroupArn", &group)],
        ),
        ("DescribeTargetHealth", vec![("TargetGroupArn", &group)]),
        ("DescribeLoadBalancers", vec![]),
        ("DescribeListeners", vec![("LoadBalancerArn", &lb)]),
    ];
    for (action, params) in &describes {
        let a = f.call(Some("carol"), action, params).await;
        assert_eq!(a.status, 200, "carol {action}: {}", a.body);
        let a = f.call(Some("bob"), action, params).await;
        assert_eq!(
            (a.status, a.code()),
            (403, "AccessDenied".to_string()),
            "bob {action}"
        );
    }

    let mutations: [(&str, Vec<(&str, &str)>); 10] = [
        (
            "CreateTargetGroup",
            vec![("Name", "mine"), ("Protocol", "HTTP"), ("Port", "80")],
        ),
        (
            "ModifyTargetGroup",
            vec![("TargetGroupArn", &group), ("HealthCheckPath", "/x")],
        ),
        (
            "ModifyTargetGroupAttributes",
            vec![
                ("TargetGroupArn", &group),
                ("Attributes.member.1.Key", "slow_start.duration_seconds"),
                ("Attributes.member.1.Value", "30"),
            ],
        ),
        (
            "RegisterTargets",
            vec![
                ("TargetGroupArn", &group),
                ("Targets.member.1.Id", "127.1.1.1"),
            ],
        ),
        (
            "DeregisterTargets",
            vec![
                ("TargetGroupArn", &group),
                ("Targets.member.1.Id", "127.1.1.1"),
            ],
        ),
        ("CreateLoadBalancer", vec![("Name", "mine")]),
        (
            "CreateListener",
            vec![
                ("LoadBalancerArn", &lb),
                ("Port", "18082"),
                ("DefaultActions.member.1.Type", "forward"),
                ("DefaultActions.member.1.TargetGroupArn", &group),
            ],
        ),
        (
            "DeleteListener",
            vec![(
                "ListenerArn",
                "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/front/1/2",
            )],
        ),
        ("DeleteLoadBalancer", vec![("LoadBalancerArn", &lb)]),
        ("DeleteTargetGroup", vec![("TargetGroupArn", &group)]),
    ];
    for (action, params) in &mutations {
        for user in ["carol", "bob"] {
            let a = f.call(Some(user), action, params).await;
            assert_eq!(
                (a.status, a.code()),
                (403, "AccessDenied".to_string()),
                "{user} {action}"
            );
        }
    }
    // Nothing changed.
    let all = f.ok("DescribeTargetGroups", &[]).await;
    assert_eq!(all.all("TargetGroupName"), ["web"]);
    assert!(f.health(&group, &[]).await.is_empty());

    // The operator may do all of it.
    for (action, params) in describes.iter().chain(&mutations) {
        let a = f.call(Some("olga"), action, params).await;
        let expected = if *action == "DeleteListener" {
            400
        } else {
            200
        };
        assert_eq!(a.status, expected, "olga {action}: {}", a.body);
    }
}
