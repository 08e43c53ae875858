//! The automations of a project as `kairo automations ls --json` and `GET /api/v1/automations`
//! give them: model, triggers (with a schedule's next firing), open and last incident.

use kairo_core::automation::{Cron, Trigger};
use kairo_core::time;
use kairo_data::Project;
use kairo_store::incidents::Incident;
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::Result;

pub async fn automations(project: &Project, md: &Metadata) -> Result<Vec<Value>> {
    let config = project.current_config()?;
    let incidents = md.incidents(false, 10_000).await?;
    let now = time::now_millis();
    let mut rows = Vec::new();
    for (name, spec) in &config.automations {
        let mine: Vec<&Incident> = incidents.iter().filter(|i| &i.automation == name).collect();
        let open = mine.iter().find(|i| !i.state.is_final());
        let last = mine.first();
        let triggers: Vec<String> = spec
            .on
            .iter()
            .map(|t| match t {
                Trigger::Alert { monitor } => format!("alert of {}", monitor.value),
                Trigger::Schedule(c) => {
                    let next = Cron::parse(&c.value).ok().and_then(|c| c.next_after(now));
                    format!(
                        "schedule \"{}\" (next {})",
                        c.value,
                        next.map(time::millis_to_string).unwrap_or_else(|| "never".into())
                    )
                }
                Trigger::Data(p) => format!("new version of {}", p.value),
            })
            .collect();
        rows.push(json!({
            "name": name, "model": spec.model.value, "on": triggers,
            "open_incident": open.map(|i| json!({"id": i.id, "state": i.state})),
            "last_incident": last.map(|i| json!({"id": i.id, "state": i.state, "opened": time::millis_to_string(i.opened_ms)})),
            "incidents": mine.len(),
        }));
    }
    Ok(rows)
}
