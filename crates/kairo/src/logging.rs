//! Where the long-running commands (`kairo server`, `kairo serve`) log: `tracing` events from
//! every crate, filtered by `RUST_LOG`, written to stderr as text or as one JSON object per line.
//! stdout keeps the human "listening on ..." lines.

use clap::{Args, ValueEnum};

/// The filter when `RUST_LOG` is unset: Kairo's own events from INFO (one line per request),
/// its dependencies' from WARN. (`kairo` matches every `kairo_*` crate: targets match by prefix.)
pub const DEFAULT_FILTER: &str = "warn,kairo=info";

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (timestamp, level, target, message and the event's fields at
    /// the top level), for log shippers.
    Json,
}

/// Logging flags of the long-running commands.
#[derive(Args)]
pub struct LogArgs {
    /// How log lines on stderr are written (filter them with RUST_LOG, default "warn,kairo=info").
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Install the process's subscriber. A `RUST_LOG` that does not parse is an error naming it,
/// rather than a server that silently logs nothing.
pub fn init(args: &LogArgs) -> Result<(), String> {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => EnvFilter::builder().parse(&spec).map_err(|e| {
            format!("RUST_LOG={spec:?} is not a log filter ({e}); use e.g. RUST_LOG=info or RUST_LOG=warn,kairo=debug")
        })?,
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match args.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}
