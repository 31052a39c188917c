//! The agent's calls to the server: RegisterContainerInstance over the ECS
//! API and the channel's WebSocket upgrade, both SigV4-signed with the
//! agent's access key.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{AgentError, AgentSettings, Channel, attributes, resources};
use crate::aws::sigv4;
use crate::runner::engine::EngineInfo;
use crate::runner::protocol::{CHANNEL_PATH, MAX_FRAME_BYTES, PROTOCOL_VERSION};

/// The server, as the agent reaches it.
pub struct Server {
    tls: bool,
    /// `host[:port]` as in the URL (the `Host` header, and the registry's name).
    authority: String,
    hostname: String,
    port: u16,
    base: String,
    http: reqwest::Client,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    access_key_id: String,
    secret: String,
    region: String,
    state_dir: std::path::PathBuf,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// The TLS settings for an `https` server: `ca_file`'s certificates, or the
/// system's bundle.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, AgentError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let path = ca_file.unwrap_or(Path::new("/etc/ssl/certs/ca-certificates.crt"));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
        roots
            .add(cert)
            .map_err(|e| AgentError::Config(format!("{}: {e}", path.display())))?;
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

impl Server {
    pub fn new(settings: &AgentSettings) -> Result<Server, AgentError> {
        let url = reqwest::Url::parse(&settings.server)
            .map_err(|e| AgentError::Config(format!("--server {}: {e}", settings.server)))?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(AgentError::Config(format!(
                    "--server: {other}:// is not http:// or https://"
                )));
            }
        };
        let hostname = url
            .host_str()
            .ok_or_else(|| AgentError::Config("--server names no host".into()))?
            .to_string();
        let port = url
            .port_or_known_default()
            .ok_or_else(|| AgentError::Config("--server names no port".into()))?;
        let authority = match url.port() {
            Some(p) => format!("{hostname}:{p}"),
            None => hostname.clone(),
        };
        let tls_config = if tls {
            Some(tls_config(settings.ca_file.as_deref())?)
        } else {
            None
        };
        let mut http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(config) = &tls_config {
            http = http.tls_backend_preconfigured((**config).clone());
        }
        let http = http
            .build()
            .map_err(|e| AgentError::Config(format!("HTTP client: {e}")))?;
        if settings.access_key_id.is_empty() || settings.secret_access_key.is_empty() {
            return Err(AgentError::Config(
                "an access key is required: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or --key-file"
                    .into(),
            ));
        }
        Ok(Server {
            tls,
            base: format!("{}://{authority}", url.scheme()),
            authority,
            hostname,
            port,
            http,
            tls_config,
            access_key_id: settings.access_key_id.clone(),
            secret: settings.secret_access_key.clone(),
            region: settings.region.clone(),
            state_dir: settings.state_dir.clone(),
        })
    }

    fn key(&self) -> sigv4::ClientKey<'_> {
        sigv4::ClientKey {
            access_key_id: &self.access_key_id,
            secret: &self.secret,
            region: &self.region,
            service: "ecs",
        }
    }

    /// `host:port` of the server, where images are pulled from: always
    /// with the port, so the engine never reads the host as a Docker Hub
    /// namespace (`wharf/app` is `docker.io/wharf/app`).
    pub fn registry_host(&self) -> String {
        format!("{}:{}", self.hostname, self.port)
    }

    /// Calls ECS operation `operation` with `input`.
    async fn call(&self, operation: &str, input: &Value) -> Result<Value, AgentError> {
        let body = serde_json::to_vec(input).unwrap_or_default();
        let target = format!("{}{operation}", crate::ecs::TARGET_PREFIX);
        let headers = [
            ("host", self.authority.as_str()),
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target.as_str()),
        ];
        let signed = sigv4::sign(&self.key(), "POST", "/", &headers, &body, now());
        let mut request = self
            .http
            .post(format!("{}/", self.base))
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", &target)
            .body(body);
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .await
            .map_err(|e| AgentError::Unreachable(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| AgentError::Unreachable(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        if status.is_server_error() {
            return Err(AgentError::Unreachable(format!(
                "{operation}: HTTP {status}"
            )));
        }
        let name = value["__type"].as_str().unwrap_or("error");
        Err(AgentError::Refused {
            operation: operation.to_string(),
            name: name.rsplit('#').next().unwrap_or(name).to_string(),
            message: value["message"].as_str().unwrap_or_default().to_string(),
        })
    }

    fn state_file(&self) -> std::path::PathBuf {
        self.state_dir.join("instance.json")
    }

    /// The instance this agent registered before in `cluster`, if any.
    fn remembered(&self, cluster: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.state_file()).ok()?;
        let state: Value = serde_json::from_str(&text).ok()?;
        (state["cluster"].as_str() == Some(cluster))
            .then(|| state["containerInstanceArn"].as_str().map(String::from))
            .flatten()
    }

    fn state(&self) -> Value {
        std::fs::read_to_string(self.state_file())
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    /// Accepts `label` as this host's installation: the one remembered, or
    /// the first one named (then remembered).
    pub fn pin_installation(&self, label: &str) -> Result<(), AgentError> {
        let mut state = self.state();
        match state["installation"].as_str() {
            Some(known) if known == label => Ok(()),
            Some(known) => Err(AgentError::State(format!(
                "the server names installation {label}, but this host belongs to {known} \
                 (remove {} to join another server)",
                self.state_file().display()
            ))),
            None => {
                state["installation"] = Value::String(label.to_string());
                self.write_state(&state)
            }
        }
    }

    fn remember(&self, cluster: &str, arn: &str) -> Result<(), AgentError> {
        let mut state = self.state();
        if !state.is_object() {
            state = json!({});
        }
        state["cluster"] = Value::String(cluster.to_string());
        state["containerInstanceArn"] = Value::String(arn.to_string());
        self.write_state(&state)
    }

    fn write_state(&self, state: &Value) -> Result<(), AgentError> {
        let error =
            |e: std::io::Error| AgentError::State(format!("{}: {e}", self.state_dir.display()));
        std::fs::create_dir_all(&self.state_dir).map_err(error)?;
        let partial = self.state_dir.join("instance.json.partial");
        std::fs::write(&partial, state.to_string()).map_err(error)?;
        std::fs::rename(&partial, self.state_file()).map_err(error)
    }

    /// Registers this host (again, as the same instance, when it did
    /// before); its container instance ARN.
    pub async fn register(
        &self,
        settings: &AgentSettings,
        info: &EngineInfo,
    ) -> Result<String, AgentError> {
        let input = json!({
            "cluster": settings.cluster,
            "totalResources": resources(settings, info),
            "attributes": attributes(settings, info),
            "versionInfo": {
                "agentVersion": format!("wharf {}", env!("CARGO_PKG_VERSION")),
                "dockerVersion": format!("DockerVersion: {}", info.server_version),
            },
        });
        let mut output = None;
        if let Some(arn) = self.remembered(&settings.cluster) {
            let mut again = input.clone();
            again["containerInstanceArn"] = Value::String(arn.clone());
            match self.call("RegisterContainerInstance", &again).await {
                Ok(o) => output = Some(o),
                // The server forgot it (a new database): register as a new host.
                Err(AgentError::Refused { message, .. })
                    if message.contains("is not registered") =>
                {
                    tracing::warn!(container_instance = %arn, "agent: the server does not know this instance; registering anew");
                }
                Err(e) => return Err(e),
            }
        }
        let output = match output {
            Some(o) => o,
            None => self.call("RegisterContainerInstance", &input).await?,
        };
        let arn = output["containerInstance"]["containerInstanceArn"]
            .as_str()
            .ok_or_else(|| AgentError::Unreachable("RegisterContainerInstance: no ARN".into()))?
            .to_string();
        self.remember(&settings.cluster, &arn)?;
        Ok(arn)
    }

    /// Opens the channel of instance `arn`.
    /// `advertise`: where load balancers reach this host, when not the
    /// address the server sees it connect from.
    pub async fn connect(
        &self,
        cluster: &str,
        arn: &str,
        advertise: Option<std::net::IpAddr>,
    ) -> Result<Channel, AgentError> {
        // A signature opens one channel; the nonce keeps two within a second apart.
        let mut path = format!(
            "{CHANNEL_PATH}?cluster={}&containerInstance={}&protocolVersion={PROTOCOL_VERSION}&nonce={}",
            encode(cluster),
            encode(arn),
            uuid::Uuid::new_v4().simple()
        );
        if let Some(address) = advertise {
            path.push_str(&format!("&address={}", encode(&address.to_string())));
        }
        let signed = sigv4::sign(
            &self.key(),
            "GET",
            &path,
            &[("host", self.authority.as_str())],
            b"",
            now(),
        );
        let scheme = if self.tls { "wss" } else { "ws" };
        let mut request = http::Request::get(format!("{scheme}://{}{path}", self.authority))
            .header("host", &self.authority)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", generate_key());
        for (name, value) in signed {
            request = request.header(name, value);
        }
        let request = request
            .body(())
            .map_err(|e| AgentError::Config(e.to_string()))?;
        let unreachable = |e: &dyn std::fmt::Display| AgentError::Unreachable(e.to_string());
        let tcp = tokio::net::TcpStream::connect((self.hostname.as_str(), self.port))
            .await
            .map_err(|e| unreachable(&e))?;
        let _ = tcp.set_nodelay(true);
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(MAX_FRAME_BYTES);
        config.max_frame_size = Some(MAX_FRAME_BYTES);
        let refused = |e: tokio_tungstenite::tungstenite::Error| match e {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                let status = response.status();
                let body: Value = response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null);
                if status.is_client_error() {
                    AgentError::Refused {
                        operation: "connect".into(),
                        name: body["__type"].as_str().unwrap_or("error").to_string(),
                        message: body["message"].as_str().unwrap_or_default().to_string(),
                    }
                } else {
                    AgentError::Unreachable(format!("channel: HTTP {status}"))
                }
            }
            other => AgentError::Unreachable(other.to_string()),
        };
        match &self.tls_config {
            None => {
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
                        .await
                        .map_err(refused)?;
                Ok(Channel::Plain(Box::new(ws)))
            }
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(self.hostname.clone())
                    .map_err(|e| AgentError::Config(e.to_string()))?;
                let stream = tokio_rustls::TlsConnector::from(tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| unreachable(&e))?;
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                        .await
                        .map_err(refused)?;
                Ok(Channel::Tls(Box::new(ws)))
            }
        }
    }
}
