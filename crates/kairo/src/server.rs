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
    let scheduler = schedule_monitors(&project).await?;
    let served = kairo_server::serve(&project, addr, shutdown, |bound| {
        // A server must outlive whoever started it closing our stdout: write errors are ignored.
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "kairo server listening on http://{bound} for {}", root.display());
        let _ = writeln!(out, "  MLflow clients: export MLFLOW_TRACKING_URI=http://{bound}");
        let _ = out.flush();
    })
    .await;
    for task in scheduler {
        task.abort();
    }
    served.map_err(|e| Failure { code: exit::ERROR, message: e.to_string() })?;
    Ok(exit::OK)
}

/// One task per monitor with a `schedule`: evaluate, record alerts, call the webhook.
async fn schedule_monitors(project: &Project) -> Result<Vec<tokio::task::JoinHandle<()>>, Failure> {
    let mut tasks = Vec::new();
    for (name, spec) in &project.config().monitors {
        let Some(schedule) = &spec.schedule else { continue };
        if spec.deployment.is_none() {
            eprintln!("kairo server: monitor {name} watches files, not a deployment: its schedule is ignored");
            continue;
        }
        let every = kairo_core::config::parse_duration_ms(schedule)
            .map_err(|e| Failure { code: exit::USAGE, message: format!("monitors.{name}.schedule: {e}") })?;
        let md = project.metadata().await?;
        let (project, name, spec) = (project.clone(), name.clone(), spec.clone());
        eprintln!("kairo server: monitor {name} every {schedule}");
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(every as u64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match kairo_serve::monitoring::evaluate_and_raise(&project, &md, &name, &spec).await {
                    Ok((_, raised)) => {
                        for r in raised.iter().filter(|r| r.new) {
                            eprintln!(
                                "kairo server: monitor {name}: ALERT {} {}",
                                r.payload["when"].as_str().unwrap_or(""),
                                r.webhook
                            );
                        }
                    }
                    Err(e) => eprintln!("kairo server: monitor {name}: {e}"),
                }
            }
        }));
    }
    Ok(tasks)
}
