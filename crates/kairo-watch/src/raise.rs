//! Raising alerts: each is recorded as a `monitor.alert` event (once per rule and newest
//! window) and POSTed to the monitor's webhook with retries; a delivery that fails for good is
//! an event too. Deployment monitors and file monitors raise through here alike.

use std::time::Duration;

use kairo_core::config::MonitorSpec;
use kairo_core::{time, EventKind};
use kairo_monitor::alerts::Alert;
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::{Result, WatchError};

/// The event payload of an alert.
pub fn alert_payload(monitor: &str, target: &str, version: Option<i64>, a: &Alert) -> Value {
    json!({
        "monitor": monitor, "target": target, "version": version,
        "rule": a.rule, "when": a.when, "metric": a.metric, "action": a.action,
        "evidence": a.evidence.iter().map(|(s, e, v)| json!({
            "window_start": time::millis_to_string(*s), "window_end": time::millis_to_string(*e),
            "start_ms": s, "end_ms": e, "value": v,
        })).collect::<Vec<_>>(),
    })
}

/// What happened to an alert.
pub struct Raised {
    pub payload: Value,
    /// False when the same rule already fired for the same newest window.
    pub new: bool,
    /// `delivered`, `failed: ...`, or empty without a webhook or for a repeat.
    pub webhook: String,
}

/// Who scheduled checks act as (`kairo server`); any other actor is a check by hand.
pub const SCHEDULER: &str = kairo_core::actor::MONITOR_SCHEDULER;

/// Record new alerts as `monitor.alert` events (a rule fires once per newest window) and
/// POST each to the webhook, retried with exponential backoff. Every call is one check of the
/// monitor, counted per day (scheduled or by hand) for the KPIs.
pub async fn raise(
    md: &Metadata,
    monitor: &str,
    spec: &MonitorSpec,
    payloads: Vec<Value>,
    actor: &str,
) -> Result<Vec<Raised>> {
    md.record_monitor_check(monitor, time::now_millis(), actor == SCHEDULER).await?;
    let subject = format!("monitor:{monitor}");
    let earlier = md.events(Some(&subject), 1000).await?;
    let newest_window = |p: &Value| p["evidence"].as_array().and_then(|e| e.last()).map(|w| w["start_ms"].clone());
    let mut out = Vec::new();
    for payload in payloads {
        let repeat = earlier.iter().any(|e| {
            e.kind == EventKind::MonitorAlert
                && e.payload["rule"] == payload["rule"]
                && newest_window(&e.payload) == newest_window(&payload)
        });
        if repeat {
            out.push(Raised { payload, new: false, webhook: String::new() });
            continue;
        }
        let id = md.record_event(actor, EventKind::MonitorAlert, &subject, &payload).await?;
        let mut webhook = String::new();
        if let Some(hook) = &spec.webhook {
            let body = json!({"event": EventKind::MonitorAlert.as_str(), "event_id": id, "alert": payload});
            webhook = match post_with_retry(&hook.url, &body, hook.retries).await {
                Ok(attempts) => format!("delivered (attempt {attempts})"),
                Err(e) => {
                    let failed = json!({"event_id": id, "url": redacted(&hook.url), "error": e.to_string()});
                    md.record_event(actor, EventKind::WebhookFailed, &subject, &failed).await?;
                    format!("failed: {e}")
                }
            };
        }
        out.push(Raised { payload, new: true, webhook });
    }
    Ok(out)
}

/// POST JSON; a connection error, 5xx or 429 is retried after 0.5 s, 1 s, 2 s, ...
/// Returns the attempt that succeeded.
pub async fn post_with_retry(url: &str, body: &Value, retries: u32) -> Result<u32, WatchError> {
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(WatchError::WebhookClient)?;
    let mut wait = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        attempt += 1;
        // The retried failure, as the give-up message will name it.
        let failure = match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(attempt),
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => format!("HTTP {}", r.status()),
            Ok(r) => return Err(WatchError::WebhookRefused { url: redacted(url), status: r.status() }),
            Err(e) => error_chain(&e.without_url()),
        };
        if attempt > retries {
            return Err(WatchError::WebhookGaveUp { url: redacted(url), attempts: attempt, last: failure });
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

/// A webhook's URL as errors and events show it: scheme and host only, since the path of a
/// Slack or Teams hook is its secret.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
        Err(_) => "(an unparsable URL)".into(),
    }
}

/// An error with its causes ("error sending request: ... : Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A webhook on a real socket that answers every request with `status`; returns its URL.
    async fn webhook(status: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = vec![0; 64 * 1024];
                let _ = socket.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        url
    }

    #[tokio::test]
    async fn a_webhook_failure_says_what_happened() {
        let body = json!({"event": "monitor.alert"});
        let url = webhook("200 OK").await;
        assert_eq!(post_with_retry(&url, &body, 0).await.unwrap(), 1);

        let url = webhook("404 Not Found").await;
        let e = post_with_retry(&url, &body, 3).await.unwrap_err();
        assert!(matches!(&e, WatchError::WebhookRefused { status, .. } if status.as_u16() == 404), "{e:?}");
        // The hook's path (often its secret) is never shown.
        assert_eq!(e.to_string(), "HTTP 404 Not Found from http://127.0.0.1/… (not retried)");

        let url = webhook("503 Service Unavailable").await;
        let e = post_with_retry(&url, &body, 1).await.unwrap_err();
        assert!(matches!(&e, WatchError::WebhookGaveUp { attempts: 2, .. }), "{e:?}");
        assert_eq!(e.to_string(), "HTTP 503 Service Unavailable after 2 attempts to http://127.0.0.1/…");
        assert!(!e.to_string().contains("/hook"), "{url}");
    }
}
