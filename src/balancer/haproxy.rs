//! The data plane: Debian's HAProxy, run by this process as a child in
//! master-worker mode and driven through its Runtime API. Wharf is the
//! control plane: each listener becomes a frontend on its port, each target
//! group it forwards to a backend, each target a server whose admin state
//! follows the target's health (`ready`, `drain`, `maint`). Servers change
//! through the Runtime API without a reload; only a new set of listeners or
//! target groups rewrites the configuration and reloads HAProxy, which
//! hands its listening sockets to the new worker (no refused connection).
//!
//! Only values Wharf made reach HAProxy: ports are numbers, addresses are
//! parsed IPs, names are derived from ARNs and sanitised.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::Balancer;
use super::model::{Listener, Protocol, Target, TargetGroup, TargetState};

/// How often the data plane catches up with the records.
const PASS: Duration = Duration::from_secs(1);
/// How long a Runtime API command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest Runtime API answer read (`show stat` of many servers).
const MAX_ANSWER: u64 = 8 * 1024 * 1024;
/// Commands sent in one Runtime API exchange.
const COMMANDS_PER_EXCHANGE: usize = 50;
/// What HAProxy answers to changes that worked.
const SUCCESS: &[&str] = &["New server registered.", "Server deleted."];
/// After failing passes the data plane waits up to this long.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where and how HAProxy runs.
#[derive(Debug, Clone)]
pub struct DataPlaneSettings {
    /// The `haproxy` program.
    pub program: PathBuf,
    /// Its configuration, Runtime API socket and pid file.
    pub dir: PathBuf,
    /// The address every listener binds.
    pub address: IpAddr,
    /// Ports no listener may take (Wharf's own).
    pub reserved_ports: Vec<u16>,
}

/// A server's admin state as the data plane wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admin {
    Ready,
    Drain,
    Maint,
}

impl Admin {
    fn command(self) -> &'static str {
        match self {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Server {
    address: IpAddr,
    port: u16,
    admin: Admin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Backend {
    /// The target group's ARN.
    arn: String,
    protocol: Protocol,
    least_outstanding: bool,
    slow_start_seconds: u32,
    servers: BTreeMap<String, Server>,
}

/// What the configuration file holds besides the servers: a change here
/// needs a reload.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    /// Port → (protocol, backend name).
    frontends: BTreeMap<u16, (Protocol, String)>,
    /// Backend name → (protocol, least outstanding, slow start).
    backends: BTreeMap<String, (Protocol, bool, u32)>,
}

/// What HAProxy should be serving.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Wanted {
    frontends: BTreeMap<u16, (Protocol, String)>,
    backends: BTreeMap<String, Backend>,
}

impl Wanted {
    fn layout(&self) -> Layout {
        Layout {
            frontends: self.frontends.clone(),
            backends: self
                .backends
                .iter()
                .map(|(name, b)| {
                    (
                        name.clone(),
                        (b.protocol, b.least_outstanding, b.slow_start_seconds),
                    )
                })
                .collect(),
        }
    }
}

/// A name HAProxy accepts, from anything.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The backend of target group `arn`: its last ARN segment (an id).
fn backend_name(arn: &str) -> String {
    format!("tg_{}", sanitize(arn.rsplit('/').next().unwrap_or(arn)))
}

fn server_name(t: &Target) -> String {
    format!("t_{}_{}", sanitize(&t.id), t.port)
}

/// The admin state of each target: routable ones ready; when none is,
/// every target not draining (ELB fails open); draining ones drain.
fn servers_of(group: &TargetGroup) -> BTreeMap<String, Server> {
    let open = !group.targets.iter().any(Target::routable);
    group
        .targets
        .iter()
        .filter_map(|t| {
            let address: IpAddr = t.address.parse().ok()?;
            let admin = match t.state {
                TargetState::Draining => Admin::Drain,
                TargetState::Unused => return None,
                _ if t.routable() || open => Admin::Ready,
                _ => Admin::Maint,
            };
            Some((
                server_name(t),
                Server {
                    address,
                    port: t.port,
                    admin,
                },
            ))
        })
        .collect()
}

fn wanted(listeners: &[Listener], groups: &[TargetGroup], reserved: &[u16]) -> Wanted {
    let by_arn: HashMap<&str, &TargetGroup> = groups.iter().map(|g| (g.arn.as_str(), g)).collect();
    let mut w = Wanted::default();
    for l in listeners {
        if reserved.contains(&l.port) {
            continue;
        }
        let Some(group) = by_arn.get(l.target_group_arn.as_str()) else {
            continue;
        };
        let name = backend_name(&group.arn);
        w.frontends.insert(l.port, (l.protocol, name.clone()));
        w.backends.entry(name).or_insert_with(|| Backend {
            arn: group.arn.clone(),
            protocol: group.protocol,
            least_outstanding: group.algorithm == "least_outstanding_requests",
            slow_start_seconds: group.slow_start_seconds,
            servers: servers_of(group),
        });
    }
    w
}

/// The whole configuration for `w`, servers included.
fn render(w: &Wanted, settings: &DataPlaneSettings) -> String {
    let dir = settings.dir.display();
    let mut c = String::new();
    c.push_str(&format!(
        "# Written by wharf; rewritten whenever listeners or target groups change.
global
    stats socket {dir}/admin.sock mode 600 level admin expose-fd listeners
    stats timeout 30s
    pidfile {dir}/haproxy.pid
    hard-stop-after 5m

defaults
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout http-keep-alive 15s
    timeout queue 10s
    timeout tunnel 1h
    retries 3
    option redispatch 1
"
    ));
    for (port, (protocol, backend)) in &w.frontends {
        // SocketAddr writes IPv6 addresses in brackets, as HAProxy reads them.
        let bind = SocketAddr::new(settings.address, *port);
        c.push_str(&format!("\nfrontend l_{port}\n    bind {bind}\n"));
        match protocol {
            Protocol::Http => c.push_str(
                "    mode http
    option forwardfor
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Port %[dst_port]
",
            ),
            Protocol::Tcp => c.push_str("    mode tcp\n"),
        }
        c.push_str(&format!("    default_backend {backend}\n"));
    }
    for (name, b) in &w.backends {
        c.push_str(&format!("\nbackend {name}\n"));
        let balance = if b.least_outstanding {
            "leastconn"
        } else {
            "roundrobin"
        };
        c.push_str(&format!("    balance {balance}\n"));
        match b.protocol {
            Protocol::Http => c.push_str(
                // Connection failures are retried for any method (the request
                // never left); a dead kept-alive connection only for methods
                // that are safe to repeat.
                "    mode http
    http-reuse safe
    retry-on conn-failure empty-response
    http-request disable-l7-retry if !METH_GET !METH_OPTIONS
",
            ),
            Protocol::Tcp => c.push_str("    mode tcp\n"),
        }
        if b.slow_start_seconds > 0 {
            c.push_str(&format!(
                "    default-server slowstart {}s\n",
                b.slow_start_seconds
            ));
        }
        for (server, s) in &b.servers {
            let address = SocketAddr::new(s.address, s.port);
            let state = match s.admin {
                Admin::Ready => "",
                Admin::Drain => " weight 0",
                Admin::Maint => " disabled",
            };
            c.push_str(&format!("    server {server} {address}{state}\n"));
        }
    }
    c
}

/// One Runtime API exchange: `command` (several joined by `;`), its answer.
async fn ask(socket: &Path, command: &str) -> std::io::Result<String> {
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await?;
        stream.write_all(command.as_bytes()).await?;
        stream.write_all(b"\n").await?;
        let mut answer = String::new();
        stream.take(MAX_ANSWER).read_to_string(&mut answer).await?;
        Ok(answer)
    };
    tokio::time::timeout(COMMAND_TIMEOUT, exchange)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "runtime API timed out"))?
}

/// A server as `show servers state` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shown {
    address: String,
    port: u16,
    admin: u32,
    weight: u32,
}

/// `show servers state <backend>`: each server by name.
fn parse_servers(answer: &str) -> HashMap<String, Shown> {
    answer
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state
            // srv_uweight ... srv_port (19th)
            if f.len() < 19 {
                return None;
            }
            Some((
                f[3].to_string(),
                Shown {
                    address: f[4].to_string(),
                    port: f[18].parse().ok()?,
                    admin: f[6].parse().ok()?,
                    weight: f[7].parse().ok()?,
                },
            ))
        })
        .collect()
}

/// HAProxy's admin bits: forced maintenance (1, 2, 4, 0x20, 0x40) and drain (8, 0x10).
fn admin_of(bits: u32) -> Admin {
    if bits & 0x67 != 0 {
        Admin::Maint
    } else if bits & 0x18 != 0 {
        Admin::Drain
    } else {
        Admin::Ready
    }
}

/// `show stat`: requests (HTTP) or sessions (TCP) each backend has served.
fn parse_stat(answer: &str) -> HashMap<String, u64> {
    let mut lines = answer.lines();
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let columns: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let find = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(req), Some(stot)) = (
        find("pxname"),
        find("svname"),
        find("req_tot"),
        find("stot"),
    ) else {
        return HashMap::new();
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            if f.get(sv) != Some(&"BACKEND") {
                return None;
            }
            let n = f
                .get(req)
                .and_then(|v| v.parse().ok())
                .or_else(|| f.get(stot).and_then(|v| v.parse().ok()))?;
            Some((f.get(px)?.to_string(), n))
        })
        .collect()
}

/// HAProxy as this process runs it.
struct Plane {
    settings: DataPlaneSettings,
    child: Option<Child>,
    /// The layout the records asked for when HAProxy was last configured.
    layout: Option<Layout>,
    /// The layout HAProxy serves (without ports that were in use).
    served: Option<Layout>,
    /// Listener ports left out because something else held them.
    skipped: Vec<u16>,
    /// Backend name → target group ARN, for the request counters.
    arns: HashMap<String, String>,
    /// Last raw counter per backend (HAProxy's restart from 0 after a reload).
    last: HashMap<String, u64>,
}

impl Plane {
    fn socket(&self) -> PathBuf {
        self.settings.dir.join("admin.sock")
    }

    fn config(&self) -> PathBuf {
        self.settings.dir.join("haproxy.cfg")
    }

    /// Writes the configuration and checks it with `haproxy -c`.
    async fn write_config(&self, text: &str) -> Result<(), String> {
        let next = self.settings.dir.join("haproxy.cfg.next");
        tokio::fs::write(&next, text)
            .await
            .map_err(|e| format!("cannot write {}: {e}", next.display()))?;
        let check = Command::new(&self.settings.program)
            .arg("-c")
            .arg("-q")
            .arg("-f")
            .arg(&next)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.settings.program.display()))?;
        if !check.status.success() {
            return Err(format!(
                "haproxy rejects the configuration: {}",
                String::from_utf8_lossy(&check.stderr).trim()
            ));
        }
        tokio::fs::rename(&next, self.config())
            .await
            .map_err(|e| format!("cannot replace the configuration: {e}"))
    }

    fn running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                tracing::warn!(%status, "load balancer: haproxy exited; restarting it");
                self.child = None;
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    /// Starts HAProxy, or makes the running master reload the configuration.
    async fn apply_config(&mut self) -> Result<(), String> {
        if self.running() {
            // Never 0 or negative: kill(2) would signal a whole process group.
            let pid = self
                .child
                .as_ref()
                .and_then(Child::id)
                .and_then(|p| i32::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or_else(|| "haproxy has no pid".to_string())?;
            // SAFETY: kill(2) with a pid this process spawned and a signal number.
            let sent = unsafe { libc::kill(pid, libc::SIGUSR2) };
            if sent != 0 {
                return Err("cannot signal haproxy to reload".into());
            }
            return Ok(());
        }
        let _ = tokio::fs::remove_file(self.socket()).await;
        let mut command = Command::new(&self.settings.program);
        command
            .arg("-W")
            .arg("-db")
            .arg("-f")
            .arg(self.config())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // SAFETY: prctl(2) only, between fork and exec: HAProxy goes when
        // this process dies, so a restarted Wharf finds its ports free.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.settings.program.display()))?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::info!(target: "wharf::balancer::haproxy", "{line}");
                }
            });
        }
        self.child = Some(child);
        Ok(())
    }

    /// One pass: the configuration when the layout changed, then each
    /// backend's servers through the Runtime API.
    async fn pass(&mut self, balancer: &Balancer) -> Result<(), String> {
        let listeners = balancer.listeners().await.map_err(|e| e.to_string())?;
        let groups = balancer.target_groups().await.map_err(|e| e.to_string())?;
        let w = wanted(&listeners, &groups, &self.settings.reserved_ports);
        self.arns = w
            .backends
            .iter()
            .map(|(n, b)| (n.clone(), b.arn.clone()))
            .collect();
        let layout = w.layout();
        let running = self.running();
        if w.frontends.is_empty() {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill().await;
            }
            self.layout = None;
            self.served = None;
            return Ok(());
        }
        let address = self.settings.address;
        let bindable = |port: u16| {
            std::net::TcpListener::bind(std::net::SocketAddr::new(address, port)).is_ok()
        };
        let freed = self.skipped.iter().any(|p| bindable(*p));
        if !running || self.layout.as_ref() != Some(&layout) || freed {
            // A port something else holds would keep HAProxy from starting
            // and take every other listener down with it: that one waits
            // until it is free.
            let held: Vec<u16> = match (&self.served, running) {
                (Some(l), true) => l.frontends.keys().copied().collect(),
                _ => Vec::new(),
            };
            let mut w = w;
            self.skipped.clear();
            w.frontends.retain(|port, _| {
                let free = held.contains(port) || bindable(*port);
                if !free {
                    tracing::warn!(
                        port,
                        "load balancer: the listener's port is in use; not served until it is free"
                    );
                    self.skipped.push(*port);
                }
                free
            });
            // Nothing else changed since: no reload.
            if running && self.served.as_ref() == Some(&w.layout()) {
                self.layout = Some(layout);
                return Ok(());
            }
            if w.frontends.is_empty() {
                self.layout = Some(layout);
                return Err("no listener port is free".into());
            }
            self.served = Some(w.layout());
            self.write_config(&render(&w, &self.settings)).await?;
            self.apply_config().await?;
            self.layout = Some(layout);
            // The new worker starts from the servers in the file.
            return Ok(());
        }
        let served = self.served.as_ref().map(|l| &l.backends);
        for (name, backend) in &w.backends {
            if served.is_some_and(|b| b.contains_key(name)) {
                self.sync_servers(name, backend).await?;
            }
        }
        self.count(balancer).await;
        Ok(())
    }

    async fn sync_servers(&self, name: &str, backend: &Backend) -> Result<(), String> {
        let socket = self.socket();
        let answer = ask(&socket, &format!("show servers state {name}"))
            .await
            .map_err(|e| format!("runtime API: {e}"))?;
        let present = parse_servers(&answer);
        let mut commands: Vec<String> = Vec::new();
        for (server, s) in &backend.servers {
            let address = s.address.to_string();
            match present.get(server) {
                Some(shown) => {
                    if shown.address != address || shown.port != s.port {
                        commands.push(format!(
                            "set server {name}/{server} addr {address} port {}",
                            s.port
                        ));
                    }
                    if admin_of(shown.admin) != s.admin {
                        commands.push(format!(
                            "set server {name}/{server} state {}",
                            s.admin.command()
                        ));
                    }
                    // Drained in the file (weight 0) and ready again.
                    if s.admin == Admin::Ready && shown.weight == 0 {
                        commands.push(format!("set weight {name}/{server} 1"));
                    }
                }
                None => {
                    let slow = if backend.slow_start_seconds > 0 {
                        format!(" slowstart {}s", backend.slow_start_seconds)
                    } else {
                        String::new()
                    };
                    let at = SocketAddr::new(s.address, s.port);
                    commands.push(format!("add server {name}/{server} {at}{slow}"));
                    // Added servers start in maintenance.
                    commands.push(format!(
                        "set server {name}/{server} state {}",
                        s.admin.command()
                    ));
                }
            }
        }
        for server in present.keys() {
            if !backend.servers.contains_key(server) {
                // Refused while connections remain; the next pass tries again.
                commands.push(format!("set server {name}/{server} state maint"));
                commands.push(format!("shutdown sessions server {name}/{server}"));
                commands.push(format!("del server {name}/{server}"));
            }
        }
        // In batches that fit HAProxy's command buffer.
        for batch in commands.chunks(COMMANDS_PER_EXCHANGE) {
            let answer = ask(&socket, &batch.join(";"))
                .await
                .map_err(|e| format!("runtime API: {e}"))?;
            let refused: Vec<&str> = answer
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !SUCCESS.contains(l))
                .collect();
            if !refused.is_empty() {
                // Deleting a server with connections left is retried next pass.
                tracing::debug!(backend = %name, answer = %refused.join(" | "), "load balancer: haproxy refused a change; retrying");
            }
        }
        Ok(())
    }

    /// Adds what each backend served since the last pass to its target
    /// group's request counter.
    async fn count(&mut self, balancer: &Balancer) {
        let Ok(answer) = ask(&self.socket(), "show stat").await else {
            return;
        };
        for (backend, total) in parse_stat(&answer) {
            let Some(arn) = self.arns.get(&backend) else {
                continue;
            };
            let last = self.last.insert(backend.clone(), total).unwrap_or(0);
            // A reload starts the counters again from zero.
            let delta = if total >= last { total - last } else { total };
            if delta > 0 {
                balancer.add_requests(arn, delta);
            }
        }
    }
}

/// Runs the data plane until `stop`: HAProxy goes with it.
pub async fn run(balancer: Balancer, settings: DataPlaneSettings, stop: CancellationToken) {
    if let Err(e) = tokio::fs::create_dir_all(&settings.dir).await {
        tracing::error!(dir = %settings.dir.display(), error = %e, "load balancer: cannot create its folder; listeners are not served");
        return;
    }
    let mut plane = Plane {
        settings,
        child: None,
        layout: None,
        served: None,
        skipped: Vec::new(),
        arns: HashMap::new(),
        last: HashMap::new(),
    };
    let mut failures: u32 = 0;
    loop {
        match plane.pass(&balancer).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!("load balancer: serving listeners again");
                }
                failures = 0;
            }
            Err(e) => {
                if failures == 0 {
                    tracing::error!(error = %e, "load balancer: listeners are not served as configured");
                }
                failures = failures.saturating_add(1);
            }
        }
        // 1 s; after failures 2 s, 4 s ... up to MAX_BACKOFF.
        let wait = PASS.saturating_mul(1 << failures.min(5)).min(MAX_BACKOFF);
        tokio::select! {
            () = stop.cancelled() => break,
            () = balancer.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    if let Some(mut child) = plane.child.take() {
        let _ = child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::model::fixtures::{group, target};

    #[test]
    fn servers_follow_target_health_and_fail_open() {
        let g = group(vec![
            target("i-1", 32768, TargetState::Healthy),
            target("i-1", 32769, TargetState::Unhealthy),
            target("i-2", 80, TargetState::Draining),
            target("i-3", 80, TargetState::Initial),
        ]);
        let s = servers_of(&g);
        assert_eq!(s["t_i-1_32768"].admin, Admin::Ready);
        assert_eq!(s["t_i-1_32769"].admin, Admin::Maint);
        assert_eq!(s["t_i-2_80"].admin, Admin::Drain);
        assert_eq!(s["t_i-3_80"].admin, Admin::Maint);
        // No target healthy: every one not draining takes traffic.
        let g = group(vec![
            target("i-1", 1, TargetState::Unhealthy),
            target("i-2", 2, TargetState::Initial),
            target("i-3", 3, TargetState::Draining),
        ]);
        let s = servers_of(&g);
        assert_eq!(s["t_i-1_1"].admin, Admin::Ready);
        assert_eq!(s["t_i-2_2"].admin, Admin::Ready);
        assert_eq!(s["t_i-3_3"].admin, Admin::Drain);
    }

    #[test]
    fn names_cannot_inject_configuration() {
        let mut t = target("x y\nserver evil 1.2.3.4:1", 80, TargetState::Healthy);
        assert_eq!(server_name(&t), "t_x_y_server_evil_1.2.3.4_1_80");
        t.address = "not an address\n".into();
        let g = group(vec![t]);
        assert!(servers_of(&g).is_empty());
        assert_eq!(
            backend_name("arn:x:targetgroup/web/0123;del server"),
            "tg_0123_del_server"
        );
    }

    #[test]
    fn runtime_api_answers_parse() {
        let servers = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n3 tg1 1 s1 127.0.0.1 0 5 1 1 4 1 0 0 8 0 0 0 - 9999 - 0 0 - - 0\n3 tg1 2 s2 127.0.0.1 2 8 1 1 2 1 0 0 0 0 0 0 - 9998 - 0 0 - - 0\n";
        let p = parse_servers(servers);
        assert_eq!(
            p["s1"],
            Shown {
                address: "127.0.0.1".into(),
                port: 9999,
                admin: 5,
                weight: 1
            }
        );
        assert_eq!(admin_of(p["s1"].admin), Admin::Maint);
        assert_eq!(admin_of(p["s2"].admin), Admin::Drain);
        assert_eq!(admin_of(0), Admin::Ready);
        let stat = "# pxname,svname,stot,req_tot\nl_80,FRONTEND,5,5\ntg_a,t_1,3,3\ntg_a,BACKEND,7,12\ntg_b,BACKEND,4,\n";
        let counts = parse_stat(stat);
        assert_eq!(counts["tg_a"], 12);
        assert_eq!(counts["tg_b"], 4);
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn the_configuration_holds_every_listener_and_server() {
        let g = group(vec![
            target("i-1", 32768, TargetState::Healthy),
            target("i-2", 32768, TargetState::Unhealthy),
        ]);
        let listeners = vec![
            Listener {
                arn: "l1".into(),
                load_balancer_arn: "lb".into(),
                port: 8080,
                protocol: Protocol::Http,
                target_group_arn: g.arn.clone(),
                created_ms: 0,
            },
            Listener {
                arn: "l2".into(),
                load_balancer_arn: "lb".into(),
                port: 5000,
                protocol: Protocol::Http,
                target_group_arn: g.arn.clone(),
                created_ms: 0,
            },
        ];
        let settings = DataPlaneSettings {
            program: "haproxy".into(),
            dir: "/run/wharf".into(),
            address: "127.0.0.1".parse().unwrap(),
            reserved_ports: vec![5000],
        };
        let w = wanted(&listeners, &[g], &settings.reserved_ports);
        let text = render(&w, &settings);
        assert!(text.contains("bind 127.0.0.1:8080"), "{text}");
        // Wharf's own port is never taken.
        assert!(!text.contains(":5000"), "{text}");
        assert!(
            text.contains("server t_i-1_32768 192.0.2.2:32768\n"),
            "{text}"
        );
        assert!(
            text.contains("server t_i-2_32768 192.0.2.2:32768 disabled\n"),
            "{text}"
        );
        assert!(
            text.contains("default_backend tg_0123456789abcdef"),
            "{text}"
        );
    }
}
