//! The command line's shape: clap types only, no behaviour; depends on
//! `wharf::config` alone. Doc comments here are `--help` texts (clap reads
//! them, so the types themselves carry none): changing one changes the interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use wharf::config::LogFormat;

#[derive(Parser)]
#[command(
    name = "wharf",
    version,
    about = "A private, OCI-compliant container registry"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the registry (the default command).
    Serve(ServeArgs),
    /// Manage users (passwords are read from a prompt or standard input, never from arguments).
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Check integrity: re-hash every blob, find missing and orphaned content,
    /// and let the database check itself. Exits 1 when problems remain.
    Fsck {
        /// Quarantine corrupt blobs: move them aside and treat them as absent
        /// until the same content is pushed again.
        #[arg(long)]
        repair: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Show storage per repository: logical size and unique (unshared) bytes.
    Du {
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Collect garbage now: expired manifests, unused blobs, idle uploads (see `[gc]`).
    Gc {
        /// Report what would be removed and change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Apply lifecycle policies now (all repositories that have one, or REPO).
    Lifecycle {
        #[command(subcommand)]
        command: LifecycleCommand,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Tasks of the task runner: list them, read their containers' logs.
    Task {
        #[command(subcommand)]
        command: TaskCommand,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Services of the task runner.
    Service {
        #[command(subcommand)]
        command: ServiceCommand,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Manage access tokens for machines (CI robots): their secret is a docker login password.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Make this host a container instance of a cluster: register it with a
    /// Wharf server and run the tasks the server places on it, on this
    /// host's Docker Engine. The access key comes from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, or --key-file.
    Agent(AgentArgs),
}

#[derive(clap::Args)]
pub struct AgentArgs {
    /// The Wharf server's URL, e.g. https://registry.example.com:5000.
    #[arg(long, env = "WHARF_SERVER")]
    pub server: String,
    /// The cluster to join.
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// The Docker Engine's socket, unix:///path (default: DOCKER_HOST, else /var/run/docker.sock).
    #[arg(long, default_value = "")]
    pub docker_host: String,
    /// An attribute of this instance, e.g. ecs.availability-zone=zone-a (repeatable).
    #[arg(long = "attribute", value_name = "NAME=VALUE")]
    pub attributes: Vec<String>,
    /// CPU units to register (default: the engine's CPUs × 1024).
    #[arg(long, value_name = "UNITS")]
    pub cpu: Option<u32>,
    /// Memory to register in MiB (default: the engine's).
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u32>,
    /// Host TCP ports no task may take, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "22,2375,2376")]
    pub reserved_ports: Vec<u16>,
    /// A file of AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// The region the server signs for (its `ecr.region`).
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Where the agent remembers which container instance it is.
    #[arg(long, default_value = "/var/lib/wharf-agent")]
    pub state_dir: PathBuf,
    /// CA certificates (PEM) to trust for an https server (default: the system's).
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Let tasks use this host's network namespace (networkMode host).
    #[arg(long)]
    pub allow_host_network: bool,
    /// The address load balancers reach this host's published ports at
    /// (default: the address the agent connects to the server from; set it
    /// when a proxy or NAT stands between them).
    #[arg(long, env = "WHARF_AGENT_ADVERTISE_ADDRESS", value_name = "IP")]
    pub advertise_address: Option<std::net::IpAddr>,
    /// A capability containers may add back on this host, e.g. NET_BIND_SERVICE (repeatable).
    #[arg(long = "allow-capability", value_name = "NAME")]
    pub allowed_capabilities: Vec<String>,
}

#[derive(clap::Args, Default)]
pub struct CommonArgs {
    /// TOML configuration file.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Folder for all local state (overrides `data_dir`).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
}

#[derive(clap::Args, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on (overrides `listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Log line format (overrides `log_format`).
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user, or replace an existing user's password and groups.
    Add {
        name: String,
        /// Group to put the user in (repeatable); rules can name `group:NAME`.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Remove a user.
    Remove { name: String },
    /// List users and their groups.
    List,
    /// Change a user's password.
    Passwd { name: String },
    /// Print the argon2 hash of a password, for `[[auth.users]]` in the configuration.
    Hash,
    /// Manage a user's AWS-style access keys (for the ECR API with SigV4).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an access key pair for a user and print it (the secret is shown once).
    Create { user: String },
    /// List access key ids, of one user or of everyone.
    List { user: Option<String> },
    /// Revoke an access key by its id.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum LifecycleCommand {
    /// Expire what the policies select; prints each image.
    Run {
        /// Only print what would expire.
        #[arg(long)]
        dry_run: bool,
        /// One repository (default: every repository with a policy).
        repository: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum TaskCommand {
    /// List tasks (live ones; --all for stopped ones too).
    Ls {
        #[arg(long)]
        all: bool,
    },
    /// Print the logs of a task's containers (stdout and stderr).
    Logs {
        /// Task id or ARN.
        task: String,
        /// Only this container.
        #[arg(long)]
        container: Option<String>,
        /// Only the last N lines of each container.
        #[arg(long)]
        tail: Option<usize>,
    },
}

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// List services with their desired and running counts.
    Ls,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an access token and print its secret (shown once).
    Create {
        /// A name to list and revoke the token by.
        #[arg(long)]
        name: String,
        /// What the token may do, e.g. 'repository:app/*:pull,push' (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Lifetime: 30d, 12h, 45m, 90s or never.
        #[arg(long, default_value = "90d")]
        expires: String,
    },
    /// List access tokens (never their secrets).
    List,
    /// Revoke an access token; it stops working at the next token request.
    Revoke {
        /// The token's name.
        name: String,
    },
}
