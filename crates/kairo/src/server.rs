//! `kairo server`.

use crate::{CmdResult, Failure};
use clap::Args;
use kairo_core::exit;
use kairo_data::Project;
use std::net::{IpAddr, SocketAddr};

#[derive(Args)]
pub struct ServerArgs {
    /// Address to listen on. Loopback by default; use 0.0.0.0 to serve the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (0 picks a free one and prints it).
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Largest artifact upload, in MiB (larger ones get 413).
    #[arg(long, default_value_t = 1024)]
    pub max_artifact_mb: u64,
    /// How often the closed loop takes triggers and advances incidents, in seconds
    /// (0: never; then run `kairo automations tick` from cron or CI).
    #[arg(long, default_value_t = 10)]
    pub loop_every_s: u64,
    /// Listen beyond loopback although the project has no users, so nothing is protected
    /// (with users, credentials are required whatever this says).
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Serve /metrics without credentials (for a Prometheus scraper).
    #[arg(long)]
    pub open_metrics: bool,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub log: crate::logging::LogArgs,
}

/// How a server treats its connections (`kairo server` and `kairo serve`).
#[derive(Args)]
pub struct ConnectionArgs {
    /// Most open client connections; beyond, new ones get 503 and are closed.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a client has to send a request's headers (and to start its next request on a
    /// kept-alive connection) before the connection is closed.
    #[arg(long, default_value_t = 15)]
    pub header_timeout_s: u64,
    /// Seconds without a byte either way after which a connection is closed.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout_s: u64,
}

impl ConnectionArgs {
    pub fn limits(&self) -> kairo_http::ConnLimits {
        kairo_http::ConnLimits {
            max_connections: self.max_connections.max(1),
            header_timeout: std::time::Duration::from_secs(self.header_timeout_s.max(1)),
            idle_timeout: std::time::Duration::from_secs(self.idle_timeout_s.max(1)),
            ..kairo_http::ConnLimits::default()
        }
    }
}

pub async fn run(args: ServerArgs) -> CmdResult {
    let project = Project::discover(&std::env::current_dir()?)?;
    let mut options = kairo_server::ServerOptions::new(SocketAddr::new(args.host, args.port));
    options.connections = args.connections.limits();
    options.max_artifact = args.max_artifact_mb.max(1).saturating_mul(1 << 20);
    options.insecure_no_auth = args.insecure_no_auth;
    options.open_metrics = args.open_metrics;
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        options.tls = Some(kairo_http::Tls::from_pem_files(cert, key).map_err(Failure::usage)?);
    }
    let scheme = if options.tls.is_some() { "https" } else { "http" };
    let shutdown = async {
        crate::interrupted().await;
        tracing::info!("shutting down: finishing in-flight requests");
    };
    let root = project.root().to_path_buf();
    let scheduler = kairo_watch::schedule::start(&project).await.map_err(Failure::watch)?;
    let closed_loop =
        (args.loop_every_s > 0).then(|| kairo_loop::start(&project, std::time::Duration::from_secs(args.loop_every_s)));
    let served = kairo_server::serve(&project, options, shutdown, |bound| {
        // A server must outlive whoever started it closing our stdout: write errors are ignored.
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "kairo server listening on {scheme}://{bound} for {}", root.display());
        let _ = writeln!(out, "  MLflow clients: export MLFLOW_TRACKING_URI={scheme}://{bound}");
        let _ = out.flush();
    })
    .await;
    for task in scheduler.into_iter().chain(closed_loop) {
        task.abort();
    }
    served.map_err(|e| Failure { code: exit::ERROR, message: e.to_string() })?;
    Ok(exit::OK)
}
