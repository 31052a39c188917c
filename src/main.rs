//! Command-line entry point: parse arguments, load the configuration, start
//! tracing, then serve or run an operator command.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use wharf::admin;
use wharf::config::{Config, LogFormat, Overrides};
use wharf::server::{self, AppState};
use wharf::storage::{CredentialStore, SqlMetadata};

#[derive(Parser)]
#[command(
    name = "wharf",
    version,
    about = "A private, OCI-compliant container registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
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
}

#[derive(clap::Args, Default)]
struct CommonArgs {
    /// TOML configuration file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Folder for all local state (overrides `data_dir`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(clap::Args, Default)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on (overrides `listen`).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Log line format (overrides `log_format`).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Subcommand)]
enum UserCommand {
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
enum KeysCommand {
    /// Create an access key pair for a user and print it (the secret is shown once).
    Create { user: String },
    /// List access key ids, of one user or of everyone.
    List { user: Option<String> },
    /// Revoke an access key by its id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum LifecycleCommand {
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
enum TaskCommand {
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
enum ServiceCommand {
    /// List services with their desired and running counts.
    Ls,
}

#[derive(Subcommand)]
enum TokenCommand {
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

fn main() -> ExitCode {
    private_umask();
    one_malloc_arena_per_core();
    // One TLS provider for the process: the HTTPS listener and webhook deliveries.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wharf: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::User { command, common } => runtime.block_on(user(command, common)),
        Command::Token { command, common } => runtime.block_on(token(command, common)),
        Command::Lifecycle { command, common } => runtime.block_on(lifecycle(command, common)),
        Command::Gc { dry_run, common } => runtime.block_on(gc(dry_run, common)),
        Command::Du { common } => runtime.block_on(du(common)),
        Command::Task { command, common } => runtime.block_on(task(command, common)),
        Command::Service { command, common } => runtime.block_on(service(command, common)),
        Command::Fsck { repair, common } => runtime.block_on(fsck(repair, common)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wharf: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// Everything Wharf creates (the database and its journal files, keys, blobs,
/// upload sessions) is readable by its own account only, whichever library
/// creates the file.
fn private_umask() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// glibc gives every thread that meets a locked arena a new one, up to eight per
/// core; under a steady upload load each arena keeps its own freed buffers, and
/// resident memory settles ~15 MiB higher for no measurable throughput (README,
/// Memory). Must run before any thread starts; `MALLOC_ARENA_MAX` still wins.
fn one_malloc_arena_per_core() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let arenas = libc::c_int::try_from(cores).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes allocator tuning; no thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}

fn load_config(common: &CommonArgs, serve: Option<&ServeArgs>) -> Result<Config> {
    let env = std::env::vars().collect();
    let overrides = Overrides {
        listen: serve.and_then(|s| s.listen),
        log_format: serve.and_then(|s| s.log_format),
        data_dir: common.data_dir.clone(),
    };
    Ok(Config::load(common.config.as_deref(), &env, &overrides)?)
}

async fn serve(args: ServeArgs) -> Result {
    let config = load_config(&args.common, Some(&args))?;
    let filter =
        EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(&config.log));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => logs.init(),
        // One JSON object per line, with the request span (and its id) in `span`.
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }

    let (state, background) = AppState::open(&config).await?;
    let tls = match config.tls.enabled() {
        true => Some(wharf::tls::server_config(
            &config.tls.cert,
            &config.tls.key,
        )?),
        false => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %listener.local_addr()?, scheme, data_dir = %config.data_dir.display(), "wharf is serving");
    server::run(listener, state, background, tls, shutdown_signal()).await?;
    tracing::info!("wharf stopped");
    Ok(())
}

async fn open_store(common: &CommonArgs) -> Result<SqlMetadata> {
    let config = load_config(common, None)?;
    wharf::storage::private::create_dir(&config.data_dir)?;
    Ok(SqlMetadata::open(&config.database()).await?)
}

/// Reads a password: from a prompt (twice) on a terminal, else the first line of stdin.
fn read_password() -> Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            return Err("the passwords differ".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn user(command: UserCommand, common: CommonArgs) -> Result {
    let mut out = std::io::stdout().lock();
    if let UserCommand::Hash = command {
        let hash = wharf::auth::hash_password(&read_password()?)?;
        writeln!(out, "{hash}")?;
        return Ok(());
    }
    let store = open_store(&common).await?;
    match command {
        UserCommand::Add { name, groups } => {
            admin::add_user(&store, &name, &read_password()?, groups).await?;
            writeln!(out, "user {name} saved")?;
        }
        UserCommand::Remove { name } => {
            let removed = admin::remove_user(&store, &name).await?;
            writeln!(
                out,
                "user {name} removed with {} access key(s); their tokens stop working",
                removed.access_keys
            )?;
        }
        UserCommand::List => {
            for u in store.users().await? {
                writeln!(out, "{}\t{}", u.name, u.groups.join(","))?;
            }
        }
        UserCommand::Passwd { name } => {
            admin::set_password(&store, &name, &read_password()?).await?;
            writeln!(out, "password of {name} changed")?;
        }
        UserCommand::Keys { command } => match command {
            KeysCommand::Create { user } => {
                let config = load_config(&common, None)?;
                let config_users: Vec<String> =
                    config.auth.users.iter().map(|u| u.name.clone()).collect();
                let secrets = server::open_secrets(&config, &store).await?;
                let (id, secret) =
                    admin::create_access_key(&store, &secrets, &user, &config_users).await?;
                writeln!(
                    out,
                    "aws_access_key_id = {id}\naws_secret_access_key = {secret}"
                )?;
            }
            KeysCommand::List { user } => {
                for k in store.access_keys(user.as_deref()).await? {
                    writeln!(
                        out,
                        "{}\t{}\tcreated {}",
                        k.id,
                        k.user,
                        format_ms(k.created_at_ms)
                    )?;
                }
            }
            KeysCommand::Revoke { id } => {
                admin::revoke_access_key(&store, &id).await?;
                writeln!(out, "access key {id} revoked")?;
            }
        },
        UserCommand::Hash => {}
    }
    Ok(())
}

async fn token(command: TokenCommand, common: CommonArgs) -> Result {
    let store = open_store(&common).await?;
    let mut out = std::io::stdout().lock();
    match command {
        TokenCommand::Create {
            name,
            scopes,
            expires,
        } => {
            let secret =
                admin::create_token(&store, &name, &scopes, admin::parse_duration(&expires)?)
                    .await?;
            writeln!(out, "{secret}")?;
        }
        TokenCommand::List => {
            for t in store.access_tokens().await? {
                let expires = t.expires_at_ms.map_or("never".to_string(), format_ms);
                writeln!(
                    out,
                    "{}\t{}\texpires {}",
                    t.name,
                    t.scopes.join(" "),
                    expires
                )?;
            }
        }
        TokenCommand::Revoke { name } => {
            admin::revoke_token(&store, &name).await?;
            writeln!(out, "access token {name} revoked")?;
        }
    }
    Ok(())
}

async fn lifecycle(command: LifecycleCommand, common: CommonArgs) -> Result {
    let LifecycleCommand::Run {
        dry_run,
        repository,
    } = command;
    let config = load_config(&common, None)?;
    let registry = server::open_registry(&config).await?;
    let repos = match repository {
        Some(r) => vec![r.parse::<wharf::oci::RepoName>()?],
        None => registry.repositories_with_lifecycle().await?,
    };
    let mut out = std::io::stdout().lock();
    let verb = if dry_run { "would expire" } else { "expired" };
    let mut total = 0;
    for repo in repos {
        for p in registry.run_lifecycle(&repo, dry_run).await? {
            let tags = if p.image.tags.is_empty() {
                "<untagged>".to_string()
            } else {
                p.image.tags.join(",")
            };
            writeln!(
                out,
                "{repo}\t{}\t{tags}\t{verb} by rule {}",
                p.image.manifest.digest, p.expiry.rule_priority
            )?;
            total += 1;
        }
    }
    writeln!(out, "{total} image(s) {verb}")?;
    Ok(())
}

/// `wharf fsck`: one line per problem, a byte progress bar on a terminal.
async fn fsck(repair: bool, common: CommonArgs) -> Result {
    use wharf::registry::FsckEvent;
    let config = load_config(&common, None)?;
    let registry = server::open_registry(&config).await?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {binary_bytes}/{binary_total_bytes} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let on_event = |event: FsckEvent<'_>| match event {
        FsckEvent::Planned { bytes, .. } => bar.set_length(bytes),
        FsckEvent::Checked { size, .. } => bar.inc(size),
    };
    let report = registry.fsck(repair, &on_event).await?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    for problem in &report.database {
        writeln!(out, "database\t{problem}")?;
    }
    for digest in &report.missing {
        writeln!(out, "missing\t{digest}")?;
    }
    for digest in &report.corrupt {
        let action = if repair { "quarantined" } else { "corrupt" };
        writeln!(out, "{action}\t{digest}")?;
    }
    for (repo, digest) in &report.broken_manifests {
        writeln!(out, "broken manifest\t{repo}@{digest}")?;
    }
    for digest in &report.orphans {
        writeln!(out, "orphan\t{digest}\t(garbage collection removes it)")?;
    }
    writeln!(
        out,
        "checked {} blob(s), {} bytes: {} missing, {} corrupt{}, {} broken manifest(s), {} orphan(s), {} database problem(s)",
        report.blobs_checked,
        report.bytes_checked,
        report.missing.len(),
        report.corrupt.len(),
        if repair {
            format!(" ({} quarantined)", report.quarantined)
        } else {
            String::new()
        },
        report.broken_manifests.len(),
        report.orphans.len(),
        report.database.len()
    )?;
    // Quarantined content still leaves its manifests broken until it is pushed again.
    if report.is_clean() {
        Ok(())
    } else {
        Err("integrity problems found".into())
    }
}

/// `wharf du`: a table of repositories, then the registry's total.
async fn du(common: CommonArgs) -> Result {
    let config = load_config(&common, None)?;
    let registry = server::open_registry(&config).await?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<50} {:>15} {:>15}",
        "REPOSITORY", "LOGICAL", "UNIQUE"
    )?;
    for u in registry.usage().await? {
        writeln!(
            out,
            "{:<50} {:>15} {:>15}",
            u.repo.as_str(),
            human_bytes(u.logical_bytes),
            human_bytes(u.unique_bytes)
        )?;
    }
    let (count, bytes) = registry.blob_totals().await?;
    writeln!(
        out,
        "registry: {count} blob(s), {} ({bytes} bytes) stored, shared blobs counted once",
        human_bytes(bytes)
    )?;
    Ok(())
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `wharf gc`: one line per removed item on stdout, a progress bar on a terminal.
async fn gc(dry_run: bool, common: CommonArgs) -> Result {
    use wharf::registry::GcEvent;
    let config = load_config(&common, None)?;
    let registry = server::open_registry(&config).await?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} blobs")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let verb = if dry_run { "would remove" } else { "removed" };
    let on_event = |event: GcEvent<'_>| match event {
        GcEvent::Candidates(n) => bar.set_length(n as u64),
        GcEvent::Blob {
            digest,
            size,
            removed,
        } => {
            bar.inc(1);
            if removed {
                bar.suspend(|| {
                    let _ = writeln!(std::io::stdout().lock(), "blob\t{digest}\t{size}");
                });
            }
        }
    };
    let report = registry
        .collect_garbage(&config.gc.policy(), dry_run, &on_event)
        .await?;
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    for (repo, digest) in &report.manifests {
        writeln!(out, "manifest\t{repo}\t{digest}")?;
    }
    writeln!(
        out,
        "{verb} {} manifest(s), {} blob link(s), {} blob(s) ({} bytes), {} upload(s)",
        report.manifests.len(),
        report.links,
        report.blobs.len(),
        report.bytes(),
        report.uploads
    )?;
    Ok(())
}

fn format_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// Resolves on SIGINT or SIGTERM.
async fn task(command: TaskCommand, common: CommonArgs) -> Result {
    use wharf::runner::model::TaskRecord;
    use wharf::storage::RunnerStore;
    let mut out = std::io::stdout().lock();
    match command {
        TaskCommand::Ls { all } => {
            let store = open_store(&common).await?;
            for stored in store.tasks(None, !all).await? {
                let r: TaskRecord = serde_json::from_str(&stored.doc)?;
                let reason = r.task.stopped_reason.as_deref().unwrap_or("");
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    r.id, r.cluster, r.family, r.task.last_status, reason
                )?;
            }
        }
        TaskCommand::Logs {
            task,
            container,
            tail,
        } => {
            let config = load_config(&common, None)?;
            let runner = server::open_task_runner(&config).await?;
            let mut logs = runner.logs(&task, container.as_deref(), tail).await?;
            while let Some(chunk) = futures::StreamExt::next(&mut logs).await {
                out.write_all(&chunk?)?;
            }
        }
    }
    Ok(())
}

async fn service(command: ServiceCommand, common: CommonArgs) -> Result {
    use wharf::runner::model::ServiceRecord;
    use wharf::storage::RunnerStore;
    let store = open_store(&common).await?;
    let mut out = std::io::stdout().lock();
    match command {
        ServiceCommand::Ls => {
            for stored in store.services(None).await? {
                let r: ServiceRecord = serde_json::from_str(&stored.doc)?;
                let s = &r.service;
                let rollout = s
                    .deployments
                    .first()
                    .map_or("", |d| d.rollout_state.as_str());
                writeln!(
                    out,
                    "{}\t{}\t{}\tdesired {}\t{}\t{}",
                    r.cluster,
                    s.service_name,
                    s.status,
                    s.desired_count,
                    s.task_definition,
                    rollout
                )?;
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down; finishing in-flight requests");
}
