-- 0007: the IVR (issue 5, IVR-1..3): call flows as data, holidays, and what each IVR session did.
-- Flows are validated by ivr_engine.flow before they are stored (ivr.flow.put); the IVR reads them
-- with the holidays over SimProt (ivr.config) and reports each session when it ends (ivr.session).
CREATE TABLE cc.ivr_flows (
    name        text PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,40}$'),
    definition  jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text NOT NULL DEFAULT ''
);

CREATE TABLE cc.holidays (
    day   date PRIMARY KEY,
    name  text NOT NULL DEFAULT ''
);

CREATE TABLE cc.ivr_sessions (
    id       bigserial PRIMARY KEY,
    contact  text NOT NULL,               -- the call's id (X-Contact-Id), the ACD contact if queued
    flow     text NOT NULL,
    caller   text NOT NULL DEFAULT '',
    pilot    text NOT NULL DEFAULT '',
    started  timestamptz NOT NULL,
    ended    timestamptz NOT NULL,
    stage    text NOT NULL,               -- the step the caller reached
    path     text NOT NULL DEFAULT '',    -- the steps he went through, "a>b>c" (the last 100)
    outcome  text NOT NULL,               -- bridged, abandoned, abandoned_queued, transferred, completed, ...
    node     text NOT NULL DEFAULT ''
);
CREATE INDEX ivr_sessions_contact ON cc.ivr_sessions (contact);
CREATE INDEX ivr_sessions_ended ON cc.ivr_sessions (ended);

INSERT INTO cc.permissions (permission, description) VALUES
    ('ivr.configure', 'change the IVR''s call flows and the holidays');
INSERT INTO cc.role_permissions (role, permission) VALUES ('admin', 'ivr.configure');
