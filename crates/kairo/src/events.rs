//! `kairo events verify`: check the event log's hash chain.

use kairo_core::exit;
use kairo_data::Project;

use crate::report::print_json;
use crate::CmdResult;

#[derive(clap::Subcommand)]
pub enum EventsCommand {
    /// Check that no event was edited or deleted since it was written (exit 4 when one was).
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: EventsCommand) -> CmdResult {
    let EventsCommand::Verify { json } = command;
    let project = Project::discover(&std::env::current_dir()?)?;
    let md = project.metadata().await?;
    let r = md.verify_events().await?;
    if json {
        print_json(&serde_json::json!({
            "events": r.events, "before_chain": r.before_chain, "intact": r.breaks.is_empty(),
            "head": r.head.as_ref().map(|(id, hash)| serde_json::json!({"id": id, "hash": hash})),
            "breaks": r.breaks.iter().map(|b| serde_json::json!({"id": b.id, "reason": b.reason})).collect::<Vec<_>>(),
        }));
    } else {
        for b in &r.breaks {
            println!("BROKEN  {}", b.reason);
        }
        let head = r.head.as_ref().map(|(id, h)| format!("; head: event {id} {h}")).unwrap_or_default();
        let before = if r.before_chain > 0 {
            format!(" ({} written before the chain began)", r.before_chain)
        } else {
            String::new()
        };
        if r.breaks.is_empty() {
            println!("{} events, chain intact{before}{head}", r.events);
        } else {
            println!("{} events, {} break(s) in the chain{before}{head}", r.events, r.breaks.len());
        }
    }
    Ok(if r.breaks.is_empty() { exit::OK } else { exit::CORRUPT })
}
