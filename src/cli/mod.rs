//! The `wharf` command line: argument types (`args`), one module per command
//! group, and output formatting (`output`). Calls the library through
//! `wharf::server`'s factories and `wharf::admin`; prints only here.

pub mod agent;
pub mod args;
pub mod maintenance;
mod output;
pub mod runner;
pub mod serve;
pub mod users;

use wharf::config::{Config, Overrides};
use wharf::storage::SqlMetadata;

use args::{CommonArgs, ServeArgs};

/// What every command returns; `main` prints the error and exits 1.
pub type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// The configuration: defaults < file < `WHARF_*` environment < flags.
fn load_config(common: &CommonArgs, serve: Option<&ServeArgs>) -> Result<Config> {
    let env = std::env::vars().collect();
    let overrides = Overrides {
        listen: serve.and_then(|s| s.listen),
        log_format: serve.and_then(|s| s.log_format),
        data_dir: common.data_dir.clone(),
    };
    Ok(Config::load(common.config.as_deref(), &env, &overrides)?)
}

/// The metadata database alone, for commands that read or change records only.
async fn open_store(common: &CommonArgs) -> Result<SqlMetadata> {
    let config = load_config(common, None)?;
    wharf::storage::private::create_dir(&config.data_dir)?;
    Ok(SqlMetadata::open(&config.database()).await?)
}
