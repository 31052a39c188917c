//! `wharf serve`: logs, the state and its background work from
//! `wharf::server`, the listener, and shutdown on SIGINT or SIGTERM.

use std::io::Write;

use tracing_subscriber::EnvFilter;
use wharf::config::{Config, LogFormat};
use wharf::server::{self, AppState};

use super::args::ServeArgs;
use super::{Result, load_config};

/// Serves until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn serve(args: ServeArgs) -> Result {
    let config = load_config(&args.common, Some(&args))?;
    init_tracing(&config);
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
    let local = listener.local_addr()?;
    let base = base_url(&config.external_url, scheme, local);
    tracing::info!(listen = %local, scheme, data_dir = %config.data_dir.display(), "wharf is serving");
    // On stdout, for the person who just typed `wharf serve`.
    let _ = writeln!(
        std::io::stdout().lock(),
        "Wharf is serving at {base}/v2/ — web console: {base}/ui/"
    );
    server::run(listener, state, background, tls, shutdown_signal()).await?;
    tracing::info!("wharf stopped");
    Ok(())
}

/// The URL a user opens: the configured external URL, else the listening
/// address, with `localhost` for a wildcard one.
fn base_url(external: &str, scheme: &str, local: std::net::SocketAddr) -> String {
    if !external.is_empty() {
        return external.trim_end_matches('/').to_string();
    }
    match local.ip() {
        ip if ip.is_unspecified() => format!("{scheme}://localhost:{}", local.port()),
        _ => format!("{scheme}://{local}"),
    }
}

/// Log lines on stderr: `RUST_LOG` if set, else `log`, in `log_format`.
pub(super) fn init_tracing(config: &Config) {
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
}

/// Resolves on SIGINT or SIGTERM.
pub(super) async fn shutdown_signal() {
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

#[cfg(test)]
mod tests {
    use super::base_url;

    #[test]
    fn the_printed_url_is_one_a_browser_opens() {
        let any = "0.0.0.0:5000".parse().unwrap();
        assert_eq!(base_url("", "http", any), "http://localhost:5000");
        let v6 = "[::1]:443".parse().unwrap();
        assert_eq!(base_url("", "https", v6), "https://[::1]:443");
        let at = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(
            base_url("https://registry.example/", "http", at),
            "https://registry.example"
        );
    }
}
