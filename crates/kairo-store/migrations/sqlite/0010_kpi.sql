-- What the KPIs need that no other record keeps (issue "show the value").

-- CPU seconds of a pipeline run's command (user + system, the child and what it waited for);
-- wall time is end_ms - start_ms. NULL for runs recorded before this migration and for runs
-- of tracking clients, whose processes Kairo does not own.
ALTER TABLE runs ADD COLUMN cpu_ms BIGINT;

-- Serving health per deployment, version and UTC day, one row per serving process
-- (`instance`, random per start): each process overwrites its own row with its running
-- totals for the day, so replicas never contend and a restart never double-counts.
-- `latency` is the encoded histogram of `kairo_core::latency::Histogram`.
CREATE TABLE serving_days (
    deployment TEXT NOT NULL,
    version BIGINT NOT NULL,
    day_ms BIGINT NOT NULL,
    instance TEXT NOT NULL,
    requests BIGINT NOT NULL,
    client_errors BIGINT NOT NULL,
    server_errors BIGINT NOT NULL,
    latency TEXT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (deployment, version, day_ms, instance)
);
CREATE INDEX serving_days_day ON serving_days (day_ms);

-- Monitor checks per UTC day: how often a monitor was checked, and by whom (`scheduled`
-- by `kairo server`, or by hand), for the automation rate and the ROI.
CREATE TABLE monitor_check_days (
    monitor TEXT NOT NULL,
    day_ms BIGINT NOT NULL,
    scheduled BIGINT NOT NULL,
    manual BIGINT NOT NULL,
    PRIMARY KEY (monitor, day_ms)
);

-- The KPIs read events of a few kinds in a period, and sum runs' costs from a time on: both
-- straight from an index (1M events, 100k runs: bench/kpi.sh).
CREATE INDEX events_kind_at ON events (kind, at);
CREATE INDEX runs_start ON runs (start_ms, stage, run_trigger, actor, status, end_ms, cpu_ms);
