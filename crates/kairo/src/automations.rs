//! `kairo automations` and `kairo incidents`: the closed loop from the command line. The
//! engine is `kairo-loop`; this file parses and prints.

use clap::Subcommand;
use kairo_core::automation::IncidentState;
use kairo_core::{exit, time};
use kairo_data::Project;
use kairo_loop::TickReport;
use serde_json::{json, Value};

use crate::report::print_json;
use crate::{CmdResult, Failure};

#[derive(Subcommand)]
pub enum AutomationsCommand {
    /// The automations in kairo.yaml: model, triggers, open incident, last outcome.
    Ls {
        /// Print the automations as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Trigger NAME now (as a person would), then advance its incident as far as it goes.
    Run {
        /// The automation, as named under `automations:` in kairo.yaml.
        name: String,
        /// Say what would happen and why; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the plan (with --dry-run) or what the loop did as JSON.
        #[arg(long)]
        json: bool,
    },
    /// One pass of the loop: take new triggers (alerts, schedules, data versions) and advance
    /// every open incident. For cron or CI; `kairo server` does this on its own.
    Tick {
        /// Take schedules as of this time (RFC 3339), e.g. to backfill a missed cron firing.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Print what the loop did (triggers taken, incident transitions, waits) as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum IncidentsCommand {
    /// Incidents, newest first.
    Ls {
        /// Only open incidents.
        #[arg(long)]
        open: bool,
        /// Show at most this many incidents.
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print the incidents as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// One incident: its timeline with the duration of every step, and the evidence.
    Show {
        /// The incident's number (from `kairo incidents ls`).
        id: i64,
        /// Print the incident, with its timeline and evidence, as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Milliseconds of an RFC 3339 time given on the command line.
fn chrono_millis(text: &str) -> Result<i64, Failure> {
    match time::millis_of(text) {
        0 if !text.starts_with("1970-01-01T00:00:00") => {
            Err(Failure::usage(format!("--at {text}: not an RFC 3339 time (e.g. 2026-12-07T03:00:00Z)")))
        }
        ms => Ok(ms),
    }
}

fn project() -> Result<Project, Failure> {
    Ok(Project::discover(&std::env::current_dir()?)?)
}

pub async fn automations(command: AutomationsCommand) -> CmdResult {
    if let Some(remote) = crate::remote::connect()? {
        return match command {
            AutomationsCommand::Ls { json } => {
                let doc = remote.get("/automations", &[]).await?;
                print_automations(doc["automations"].as_array().map(Vec::as_slice).unwrap_or_default(), json)
            }
            AutomationsCommand::Run { name, dry_run, json } => {
                let path = format!("/automations/{}/run", crate::remote::segment(&name));
                let doc = remote.post(&path, &json!({"dry_run": dry_run})).await?;
                if dry_run {
                    print_plan(&doc, json);
                } else if json {
                    print_json(&doc);
                } else {
                    for t in doc["triggers"].as_array().into_iter().flatten() {
                        println!(
                            "trigger {} {}: {}",
                            t["automation"].as_str().unwrap_or(""),
                            t["key"].as_str().unwrap_or(""),
                            t["detail"].as_str().unwrap_or("")
                        );
                    }
                    println!("the server's loop advances it (`kairo incidents ls --open`)");
                }
                Ok(exit::OK)
            }
            AutomationsCommand::Tick { .. } => Err(Failure::usage(
                "`kairo automations tick` runs the loop where the database is; the server ticks on its own (`kairo server --loop-every-s`)",
            )),
        };
    }
    let project = project()?;
    let md = project.metadata().await?;
    let result = match command {
        AutomationsCommand::Ls { json } => {
            let rows = kairo_loop::describe::automations(&project, &md).await.map_err(Failure::closed_loop)?;
            print_automations(&rows, json)
        }
        AutomationsCommand::Run { name, dry_run: true, json } => {
            let config = project.current_config()?;
            let spec = kairo_loop::automation(&config, &name).map_err(Failure::closed_loop)?;
            let steps = kairo_loop::plan::plan(&project, &md, &name, spec).await.map_err(Failure::closed_loop)?;
            print_plan(&kairo_loop::plan::to_json(&name, &steps), json);
            Ok(exit::OK)
        }
        AutomationsCommand::Run { name, dry_run: false, json } => {
            let report = kairo_loop::run_now(&project, &md, &name).await.map_err(Failure::closed_loop)?;
            print_report(&report, json);
            Ok(exit::OK)
        }
        AutomationsCommand::Tick { at, json } => {
            let now = match at.as_deref() {
                None => time::now_millis(),
                Some(t) => chrono_millis(t)?,
            };
            let report = kairo_loop::tick_at(&project, &md, now).await.map_err(Failure::closed_loop)?;
            print_report(&report, json);
            Ok(if report.busy.is_some() { exit::CHANGED } else { exit::OK })
        }
    };
    md.close().await;
    result
}

fn print_plan(plan: &Value, json: bool) {
    if json {
        print_json(plan);
        return;
    }
    println!("{} (dry run: nothing is changed)", plan["automation"].as_str().unwrap_or(""));
    for s in plan["steps"].as_array().into_iter().flatten() {
        println!("  {:<9} {}", s["step"].as_str().unwrap_or(""), s["would"].as_str().unwrap_or(""));
    }
}

fn print_automations(rows: &[Value], json_out: bool) -> CmdResult {
    if json_out {
        print_json(&rows);
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        println!("no automations in kairo.yaml (add `automations:`; see README)");
    }
    for r in rows {
        println!(
            "{}  model {}  ({} incidents)",
            r["name"].as_str().unwrap_or(""),
            r["model"].as_str().unwrap_or(""),
            r["incidents"]
        );
        for t in r["on"].as_array().into_iter().flatten() {
            println!("  on {}", t.as_str().unwrap_or(""));
        }
        if let Some(o) = r["open_incident"].as_object() {
            println!("  open: incident {} ({})", o["id"], o["state"].as_str().unwrap_or(""));
        } else if let Some(l) = r["last_incident"].as_object() {
            println!("  last: incident {} ended {}", l["id"], l["state"].as_str().unwrap_or(""));
        }
    }
    Ok(exit::OK)
}

fn print_report(r: &TickReport, json_out: bool) {
    if json_out {
        print_json(r);
        return;
    }
    if let Some(b) = &r.busy {
        println!("{b}");
        return;
    }
    for t in &r.triggers {
        println!("trigger {} {}: {}", t.automation, t.key, t.detail);
    }
    for t in &r.transitions {
        println!("incident {}: {} -> {}  {}", t.incident, t.from, t.to, t.note);
    }
    for w in &r.waiting {
        println!("incident {} {}: waiting for {}", w.incident, w.state, w.on);
    }
    if r.triggers.is_empty() && r.transitions.is_empty() && r.waiting.is_empty() {
        println!("nothing to do: no new triggers, no open incidents");
    }
}

pub async fn incidents(command: IncidentsCommand) -> CmdResult {
    if let Some(remote) = crate::remote::connect()? {
        return match command {
            IncidentsCommand::Ls { open, limit, json } => {
                let query = [("open", open.to_string()), ("limit", limit.clamp(1, 10_000).to_string())];
                let doc = remote.get("/incidents", &query).await?;
                print_incidents(doc["incidents"].as_array().map(Vec::as_slice).unwrap_or_default(), open, json)
            }
            IncidentsCommand::Show { id, json } => {
                print_incident(&remote.get(&format!("/incidents/{id}"), &[]).await?, json)
            }
        };
    }
    let project = project()?;
    let md = project.metadata().await?;
    let result = match command {
        IncidentsCommand::Ls { open, limit, json } => {
            let list = md.incidents(open, limit.max(1)).await?;
            let docs: Vec<Value> = list
                .into_iter()
                .map(|i| serde_json::to_value(kairo_server::api_v1::incident_dto(i, None)))
                .collect::<Result<_, _>>()?;
            print_incidents(&docs, open, json)
        }
        IncidentsCommand::Show { id, json } => {
            let doc = serde_json::to_value(kairo_server::api_v1::incident_with_timeline(&md, id).await?)?;
            print_incident(&doc, json)
        }
    };
    md.close().await;
    result
}

fn millis_or_now(v: &Value) -> i64 {
    v.as_str().map(time::millis_of).unwrap_or_else(time::now_millis)
}

/// Incidents as `GET /api/v1/incidents` gives them, as a table.
fn print_incidents(list: &[Value], open: bool, json: bool) -> CmdResult {
    if json {
        print_json(&list);
    } else if list.is_empty() {
        println!("no incidents{}", if open { " open" } else { "" });
    } else {
        println!(
            "{:>4}  {:<18} {:<16} {:<10} {:<24} {:>9}",
            "ID", "STATE", "AUTOMATION", "MODEL", "OPENED", "DURATION"
        );
        for i in list {
            let opened = millis_or_now(&i["opened"]);
            println!(
                "{:>4}  {:<18} {:<16} {:<10} {:<24} {:>9}",
                i["id"],
                i["state"].as_str().unwrap_or(""),
                i["automation"].as_str().unwrap_or(""),
                i["model"].as_str().unwrap_or(""),
                i["opened"].as_str().unwrap_or(""),
                duration(millis_or_now(&i["closed"]) - opened)
            );
        }
    }
    Ok(exit::OK)
}

use kairo_loop::describe::duration;

/// One incident as `GET /api/v1/incidents/{id}` gives it: its timeline with the duration of
/// every step, and the evidence.
fn print_incident(inc: &Value, json: bool) -> CmdResult {
    if json {
        print_json(inc);
        return Ok(exit::OK);
    }
    let state = inc["state"].as_str().unwrap_or("");
    let is_final = IncidentState::parse(state).is_some_and(|s| s.is_final());
    println!(
        "incident {}: {state} (automation {}, model {})",
        inc["id"],
        inc["automation"].as_str().unwrap_or(""),
        inc["model"].as_str().unwrap_or("")
    );
    let opened = millis_or_now(&inc["opened"]);
    let end = millis_or_now(&inc["closed"]);
    println!(
        "opened {}, {} {}",
        inc["opened"].as_str().unwrap_or(""),
        if inc["closed"].is_string() { "closed after" } else { "open for" },
        duration(end - opened)
    );
    println!("\ntimeline");
    let events = inc["timeline"].as_array().map(Vec::as_slice).unwrap_or_default();
    let times: Vec<i64> = events.iter().map(|e| millis_or_now(&e["at"])).collect();
    for (k, e) in events.iter().enumerate() {
        let took = times.get(k + 1).copied().unwrap_or(end) - times[k];
        let what = kairo_loop::describe::timeline_text(e["kind"].as_str().unwrap_or(""), &e["payload"]);
        let last = k + 1 == events.len() && is_final;
        println!(
            "  {}  {:>10}  {what}",
            e["at"].as_str().unwrap_or(""),
            if last { String::new() } else { duration(took) }
        );
    }
    let d = &inc["detail"];
    if let Some(ev) = d.get("evaluation").filter(|v| v.is_object()) {
        println!("\nevaluation");
        if let Some(s) = ev["skipped"].as_str() {
            println!("  skipped: {s}");
        } else {
            println!("  champion   version {} ({})", ev["champion"]["version"], short(&ev["champion"]["object"]));
            println!("  challenger version {} ({})", ev["challenger"]["version"], short(&ev["challenger"]["object"]));
            println!("  rows       {} (hash {})", ev["rows"], short(&ev["rows_hash"]));
            for s in ev["sources"].as_array().into_iter().flatten() {
                println!("    {}", kairo_loop::describe::facts_text(s));
            }
            println!(
                "  test       {} at {} confidence, seed {}",
                ev["test"].as_str().unwrap_or(""),
                ev["confidence"],
                ev["seed"]
            );
            let r = &ev["result"];
            if let Some(i) = r["interval"].as_array() {
                println!(
                    "  result     {} challenger {:.4}, champion {:.4}: difference {:+.4}, interval [{:+.4}, {:+.4}] → {}",
                    r["metric"].as_str().unwrap_or(""),
                    r["challenger"].as_f64().unwrap_or(f64::NAN),
                    r["champion"].as_f64().unwrap_or(f64::NAN),
                    r["difference"].as_f64().unwrap_or(f64::NAN),
                    i[0].as_f64().unwrap_or(f64::NAN),
                    i[1].as_f64().unwrap_or(f64::NAN),
                    r["verdict"].as_str().unwrap_or("")
                );
            } else {
                println!("  result     {}", kairo_loop::describe::facts_text(r));
            }
            for group in ev["slices"].as_array().into_iter().flatten() {
                println!("  slices by {}", group["column"].as_str().unwrap_or(""));
                for s in group["slices"].as_array().into_iter().flatten() {
                    println!("    {}", kairo_loop::describe::facts_text(s));
                }
            }
            if let Some(f) = ev["fallback"].as_str() {
                println!("  note       {f}");
            }
        }
    }
    if let Some(f) = d.get("failed") {
        println!("\nfailed at {}: {}", f["step"].as_str().unwrap_or(""), f["reason"].as_str().unwrap_or(""));
    }
    if state == IncidentState::AwaitingApproval.as_str() {
        println!(
            "\nwaiting for approval: kairo models promote {} {} --approve",
            inc["model"].as_str().unwrap_or(""),
            d["challenger"]["version"]
        );
    }
    Ok(exit::OK)
}

fn short(v: &Value) -> String {
    v.as_str().map(|s| s[..s.len().min(12)].to_string()).unwrap_or_default()
}
