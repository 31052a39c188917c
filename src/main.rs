//! Command-line entry point: set the process up, parse the arguments, then
//! serve or run an operator command (`cli`).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::args::{Cli, Command, ServeArgs};
use cli::{agent, maintenance, runner, serve, users};

fn main() -> ExitCode {
    private_umask();
    one_malloc_arena_per_core();
    // One TLS provider for the process: the HTTPS listener and webhook deliveries.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let parsed = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wharf: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match parsed
        .command
        .unwrap_or(Command::Serve(ServeArgs::default()))
    {
        Command::Serve(args) => runtime.block_on(serve::serve(args)),
        Command::User { command, common } => runtime.block_on(users::user(command, common)),
        Command::Token { command, common } => runtime.block_on(users::token(command, common)),
        Command::Lifecycle { command, common } => {
            runtime.block_on(maintenance::lifecycle(command, common))
        }
        Command::Gc { dry_run, common } => runtime.block_on(maintenance::gc(dry_run, common)),
        Command::Du { common } => runtime.block_on(maintenance::du(common)),
        Command::Task { command, common } => runtime.block_on(runner::task(command, common)),
        Command::Service { command, common } => runtime.block_on(runner::service(command, common)),
        Command::Fsck { repair, common } => runtime.block_on(maintenance::fsck(repair, common)),
        Command::Agent(args) => runtime.block_on(agent::agent(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wharf: {e}");
            ExitCode::FAILURE
        }
    }
}

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
/// resident memory settles ~12 MiB higher for no measurable throughput (README,
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
