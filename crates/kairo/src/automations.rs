//! `kairo automations` and `kairo incidents`: the closed loop from the command line. The
//! engine is `kairo-loop`; this file parses and prints.

use clap::Subcommand;
use kairo_core::automation::{IncidentState, Trigger};
use kairo_core::{exit, time};
use kairo_data::Project;
use kairo_loop::TickReport;
use kairo_store::incidents::Incident;
use serde_json::{json, Value};

use crate::report::print_json;
use crate::{CmdResult, Failure};

#[derive(Subcommand)]
pub enum AutomationsCommand {
    /// The automations in kairo.yaml: model, triggers, open incident, last outcome.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Trigger NAME now (as a person would), then advance its incident as far as it goes.
    Run {
        name: String,
        /// Say what would happen and why; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// One pass of the loop: take new triggers (alerts, schedules, data versions) and advance
    /// every open incident. For cron or CI; `kairo server` does this on its own.
    Tick {
        /// Take schedules as of this time (RFC 3339), e.g. to backfill a missed cron firing.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
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
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// One incident: its timeline with the duration of every step, and the evidence.
    Show {
        id: i64,
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
    let project = project()?;
    let md = project.metadata().await?;
    let result = match command {
        AutomationsCommand::Ls { json } => ls(&project, &md, json).await,
        AutomationsCommand::Run { name, dry_run: true, json } => {
            let config = project.current_config()?;
            let spec = kairo_loop::automation(&config, &name).map_err(Failure::closed_loop)?;
            let steps = kairo_loop::plan::plan(&project, &md, &name, spec).await.map_err(Failure::closed_loop)?;
            if json {
                print_json(&kairo_loop::plan::to_json(&name, &steps));
            } else {
                println!("{name} (dry run: nothing is changed)");
                for (step, would) in &steps {
                    println!("  {step:<9} {would}");
                }
            }
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

async fn ls(project: &Project, md: &kairo_store::Metadata, json_out: bool) -> CmdResult {
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
                    let next = kairo_core::automation::Cron::parse(&c.value).ok().and_then(|c| c.next_after(now));
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
    if json_out {
        print_json(&rows);
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        println!("no automations in kairo.yaml (add `automations:`; see README)");
    }
    for r in &rows {
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
    let project = project()?;
    let md = project.metadata().await?;
    let result = match command {
        IncidentsCommand::Ls { open, limit, json } => {
            let list = md.incidents(open, limit.max(1)).await?;
            if json {
                let dtos: Vec<_> = list.iter().cloned().map(|i| kairo_server::api_v1::incident_dto(i, None)).collect();
                print_json(&dtos);
            } else if list.is_empty() {
                println!("no incidents{}", if open { " open" } else { "" });
            } else {
                println!(
                    "{:>4}  {:<18} {:<16} {:<10} {:<24} {:>9}",
                    "ID", "STATE", "AUTOMATION", "MODEL", "OPENED", "DURATION"
                );
                for i in &list {
                    println!(
                        "{:>4}  {:<18} {:<16} {:<10} {:<24} {:>9}",
                        i.id,
                        i.state.as_str(),
                        i.automation,
                        i.model,
                        time::millis_to_string(i.opened_ms),
                        duration(i.closed_ms.unwrap_or_else(time::now_millis) - i.opened_ms)
                    );
                }
            }
            Ok(exit::OK)
        }
        IncidentsCommand::Show { id, json } => {
            if json {
                print_json(&kairo_server::api_v1::incident_with_timeline(&md, id).await?);
            } else {
                let inc = md.incident(id).await?;
                let events = md.events(Some(&format!("incident:{id}")), 10_000).await?;
                show(&inc, &events);
            }
            Ok(exit::OK)
        }
    };
    md.close().await;
    result
}

/// `1.2 s`, `3 min 4 s`, `2 h 5 min`.
fn duration(ms: i64) -> String {
    match ms {
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        ms => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

fn show(inc: &Incident, events: &[kairo_store::metadata::Event]) {
    println!("incident {}: {} (automation {}, model {})", inc.id, inc.state, inc.automation, inc.model);
    let end = inc.closed_ms.unwrap_or_else(time::now_millis);
    println!(
        "opened {}, {} {}",
        time::millis_to_string(inc.opened_ms),
        if inc.closed_ms.is_some() { "closed after" } else { "open for" },
        duration(end - inc.opened_ms)
    );
    println!("\ntimeline");
    let times: Vec<i64> = events.iter().map(|e| time::millis_of(&e.at)).collect();
    for (k, e) in events.iter().enumerate() {
        let took = times.get(k + 1).copied().unwrap_or(end) - times[k];
        let what = match e.kind.as_str() {
            "incident.opened" => format!("opened by {}", trigger_text(&e.payload["trigger"])),
            "incident.joined" => format!("joined by {}", trigger_text(&e.payload)),
            "incident.advanced" => {
                let (from, to) = (e.payload["from"].as_str().unwrap_or(""), e.payload["to"].as_str().unwrap_or(""));
                let facts = facts_text(&e.payload["facts"]);
                if from == to {
                    format!("{to}: {facts}")
                } else {
                    format!("{from} -> {to}{}", if facts.is_empty() { String::new() } else { format!(": {facts}") })
                }
            }
            other => other.to_string(),
        };
        let last = k + 1 == events.len() && inc.state.is_final();
        println!("  {}  {:>10}  {what}", e.at, if last { String::new() } else { duration(took) });
    }
    let d = &inc.detail;
    if let Some(ev) = d.get("evaluation").filter(|v| v.is_object()) {
        println!("\nevaluation");
        if let Some(s) = ev["skipped"].as_str() {
            println!("  skipped: {s}");
        } else {
            println!("  champion   version {} ({})", ev["champion"]["version"], short(&ev["champion"]["object"]));
            println!("  challenger version {} ({})", ev["challenger"]["version"], short(&ev["challenger"]["object"]));
            println!("  rows       {} (hash {})", ev["rows"], short(&ev["rows_hash"]));
            for s in ev["sources"].as_array().into_iter().flatten() {
                println!("    {}", facts_text(s));
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
                println!("  result     {}", facts_text(r));
            }
            for group in ev["slices"].as_array().into_iter().flatten() {
                println!("  slices by {}", group["column"].as_str().unwrap_or(""));
                for s in group["slices"].as_array().into_iter().flatten() {
                    println!("    {}", facts_text(s));
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
    if inc.state == IncidentState::AwaitingApproval {
        println!("\nwaiting for approval: kairo models promote {} {} --approve", inc.model, d["challenger"]["version"]);
    }
}

fn short(v: &Value) -> String {
    v.as_str().map(|s| s[..s.len().min(12)].to_string()).unwrap_or_default()
}

fn trigger_text(t: &Value) -> String {
    let what = &t["what"];
    match what["kind"].as_str() {
        Some("alert") => format!(
            "alert of monitor {}: {}",
            what["alert"]["monitor"].as_str().unwrap_or(""),
            what["alert"]["when"].as_str().unwrap_or("")
        ),
        Some("schedule") => format!("schedule \"{}\"", what["cron"].as_str().unwrap_or("")),
        Some("data") => format!("new version of {}", what["path"].as_str().unwrap_or("")),
        Some("manual") => format!("hand ({})", what["by"].as_str().unwrap_or("")),
        _ => t["key"].as_str().unwrap_or("").to_string(),
    }
}

/// `key=value` pairs of a JSON object, one level deep, for a timeline line.
fn facts_text(v: &Value) -> String {
    let Some(m) = v.as_object() else { return String::new() };
    m.iter()
        .filter(|(k, v)| !v.is_null() && !k.ends_with("_ms") && k.as_str() != "waiting_on")
        .map(|(k, v)| match v {
            Value::Object(_) => format!("{k}: {{{}}}", facts_text(v)),
            Value::Array(a) if a.iter().any(Value::is_object) => {
                format!("{k}: [{}]", a.iter().map(facts_text).collect::<Vec<_>>().join("; "))
            }
            Value::String(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                format!("{k}={}", &s[..12])
            }
            Value::String(s) => format!("{k}={s}"),
            Value::Number(n) if n.is_f64() => format!("{k}={:.4}", n.as_f64().unwrap_or(f64::NAN)),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
