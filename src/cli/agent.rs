//! `wharf agent`: the settings from flags, environment and key file, then
//! `wharf::agent::run` until SIGINT or SIGTERM.

use wharf::agent::{AgentError, AgentSettings};
use wharf::config::Config;

use super::Result;
use super::args::AgentArgs;

/// `KEY=VALUE` lines (blank lines and `#` comments allowed), as an
/// environment file.
fn read_key_file(path: &std::path::Path) -> Result<(String, String)> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--key-file {}: {e}", path.display()))?;
    let (mut id, mut secret) = (String::new(), String::new());
    for line in text.lines().map(str::trim) {
        match line.split_once('=') {
            Some(("AWS_ACCESS_KEY_ID", v)) => id = v.trim().to_string(),
            Some(("AWS_SECRET_ACCESS_KEY", v)) => secret = v.trim().to_string(),
            _ => {}
        }
    }
    Ok((id, secret))
}

pub async fn agent(args: AgentArgs) -> Result {
    super::serve::init_tracing(&Config::default());
    let (access_key_id, secret_access_key) = match &args.key_file {
        Some(path) => read_key_file(path)?,
        None => (
            std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default(),
            std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
        ),
    };
    let mut attributes = Vec::new();
    for a in &args.attributes {
        let (name, value) = a
            .split_once('=')
            .ok_or_else(|| format!("--attribute {a:?}: expected NAME=VALUE"))?;
        attributes.push((name.to_string(), value.to_string()));
    }
    let settings = AgentSettings {
        server: args.server,
        cluster: args.cluster,
        docker_host: args.docker_host,
        attributes,
        cpu: args.cpu,
        memory_mib: args.memory,
        reserved_ports: args.reserved_ports,
        access_key_id,
        secret_access_key,
        region: args.region,
        state_dir: args.state_dir,
        ca_file: args.ca_file,
        allow_host_network: args.allow_host_network,
        advertise_address: args.advertise_address,
        allowed_capabilities: args.allowed_capabilities,
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let stopping = stop.clone();
    tokio::spawn(async move {
        super::serve::shutdown_signal().await;
        stopping.cancel();
    });
    wharf::agent::run(settings, stop)
        .await
        .map_err(|e: AgentError| e.into())
}
