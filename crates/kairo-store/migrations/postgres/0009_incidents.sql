-- The closed loop. An incident is one trigger's journey (retrain, register, evaluate, promote,
-- roll out, verify); its state and facts change only by compare-and-set on generation, each
-- change with its event (subject incident:ID). open_model holds the model while the incident
-- is open and NULL after: a unique column, so a model has at most one open incident.
CREATE TABLE incidents (
    id BIGSERIAL PRIMARY KEY,
    automation TEXT NOT NULL,
    model TEXT NOT NULL,
    state TEXT NOT NULL,
    open_model TEXT UNIQUE,
    detail TEXT NOT NULL,
    generation BIGINT NOT NULL,
    opened_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    closed_ms BIGINT
);
CREATE INDEX incidents_automation ON incidents (automation, opened_ms);

-- Every trigger an automation has taken, once: the alert event, cron firing or dataset
-- version it came from, and whether it opened an incident, joined one or was held back.
CREATE TABLE automation_triggers (
    automation TEXT NOT NULL,
    trigger_key TEXT NOT NULL,
    incident_id BIGINT,
    outcome TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (automation, trigger_key)
);
