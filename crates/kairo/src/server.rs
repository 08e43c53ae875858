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
}

pub async fn run(args: ServerArgs) -> CmdResult {
    let project = Project::discover(&std::env::current_dir()?)?;
    let addr = SocketAddr::new(args.host, args.port);
    let shutdown = async {
        crate::interrupted().await;
        eprintln!("kairo server: shutting down (finishing in-flight requests)");
    };
    let root = project.root().to_path_buf();
    kairo_server::serve(&project, addr, shutdown, |bound| {
        // A server must outlive whoever started it closing our stdout: write errors are ignored.
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "kairo server listening on http://{bound} for {}", root.display());
        let _ = writeln!(out, "  MLflow clients: export MLFLOW_TRACKING_URI=http://{bound}");
        let _ = out.flush();
    })
    .await
    .map_err(|e| Failure { code: exit::ERROR, message: e.to_string() })?;
    Ok(exit::OK)
}
