//! `confab`: parse the configuration, start logging, serve until Ctrl-C or SIGTERM.

use clap::Parser;
use confab_server::{app, Hub, HubConfig};
use leptos::config::LeptosOptions;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// A self-hosted video-call server: serves the web app and introduces the browsers of a room to
/// each other over WebSocket. Media flows browser to browser.
#[derive(Debug, Parser)]
#[command(name = "confab", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "CONFAB_ADDR", default_value = "127.0.0.1:3000")]
    addr: SocketAddr,

    /// STUN server URLs handed to browsers, comma-separated; an empty value turns STUN off.
    #[arg(
        long,
        env = "CONFAB_STUN",
        value_delimiter = ',',
        default_value = "stun:stun.l.google.com:19302,stun:stun1.l.google.com:19302"
    )]
    stun: Vec<String>,

    /// The most people in one room.
    #[arg(long, env = "CONFAB_ROOM_CAPACITY", default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..))]
    room_capacity: u16,

    /// Heartbeat period in milliseconds; a socket silent for three periods is dropped.
    #[arg(long, env = "CONFAB_HEARTBEAT_MS", default_value_t = 2500, value_parser = clap::value_parser!(u64).range(50..))]
    heartbeat_ms: u64,

    /// How long, in milliseconds, the place of a connection that dropped without closing is
    /// held so that the same browser tab can resume it.
    #[arg(long, env = "CONFAB_RESUME_GRACE_MS", default_value_t = 5000)]
    resume_grace_ms: u64,

    /// Log filter, e.g. `info` or `confab_server=debug,info`.
    #[arg(long, env = "CONFAB_LOG", default_value = "info")]
    log: String,

    /// The folder `cargo leptos build` wrote the site to (holds `pkg/`).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    site_root: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt().with_env_filter(EnvFilter::new(&args.log)).init();

    let shutdown = CancellationToken::new();
    let hub = Arc::new(Hub::new(
        HubConfig {
            room_capacity: usize::from(args.room_capacity),
            stun_urls: args.stun,
            heartbeat: Duration::from_millis(args.heartbeat_ms),
            resume_grace: Duration::from_millis(args.resume_grace_ms),
        },
        shutdown.clone(),
    ));
    let options = LeptosOptions::builder()
        .output_name("confab")
        .site_root(args.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(args.addr)
        .build();

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    tokio::spawn(watch_signals(shutdown.clone()));
    axum::serve(listener, app(hub, options)).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM. Sessions see the same token and close their sockets
/// with "going away" (axum does not wait for upgraded connections on its own).
async fn watch_signals(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
