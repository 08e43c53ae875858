//! Monitors on a schedule: one task per deployment monitor with a `schedule:` in kairo.yaml,
//! evaluating and raising every period while `kairo server` runs.

use kairo_data::Project;
use tokio::task::JoinHandle;

use crate::{evaluate_and_raise, Result, WatchError};

/// Start one task per scheduled deployment monitor; the caller aborts them when it stops. A
/// schedule that does not parse refuses to start (naming `monitors.NAME.schedule`).
pub async fn start(project: &Project) -> Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for (name, spec) in &project.config().monitors {
        let Some(schedule) = &spec.schedule else { continue };
        if spec.deployment.is_none() {
            tracing::warn!(monitor = %name, "the monitor watches files, not a deployment: its schedule is ignored");
            continue;
        }
        let every = kairo_core::config::parse_duration_ms(schedule)
            .map_err(|e| WatchError::Spec(format!("monitors.{name}.schedule: {e}")))?;
        let md = project.metadata().await?;
        let (project, name, spec) = (project.clone(), name.clone(), spec.clone());
        tracing::info!(monitor = %name, every = %schedule, "monitor scheduled");
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(every.max(1) as u64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match evaluate_and_raise(&project, &md, &name, &spec).await {
                    Ok((_, raised)) => {
                        for r in raised.iter().filter(|r| r.new) {
                            tracing::warn!(
                                monitor = %name,
                                when = r.payload["when"].as_str().unwrap_or(""),
                                webhook = %r.webhook,
                                "alert raised"
                            );
                        }
                    }
                    Err(e) => tracing::error!(monitor = %name, error = %e, "monitor evaluation failed"),
                }
            }
        }));
    }
    Ok(tasks)
}
