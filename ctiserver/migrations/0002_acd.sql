-- 0002 acd: distribution (SPEC ACD-1..7, TEL-3..5). Three kinds of table, kept apart (DATA-1):
--   configuration: skills, languages, agent profiles, not-ready reasons, projects, entry rules;
--   state: what another node needs to resume (agent sessions, contacts still in the system);
--   history: append-only records for reporting (agent state intervals, contacts, offers).

-- ---- configuration -------------------------------------------------------------------------------
CREATE TABLE cc.skills (
    skill       text PRIMARY KEY CONSTRAINT skills_skill_check CHECK (skill ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    description text NOT NULL DEFAULT ''
);

CREATE TABLE cc.languages (
    language    text PRIMARY KEY CONSTRAINT languages_language_check CHECK (language ~ '^[a-z]{2,3}$'),
    description text NOT NULL DEFAULT ''
);

-- an agent's profile; the account (cc.accounts) is who he is, this is what he can do
CREATE TABLE cc.agents (
    account_id  bigint PRIMARY KEY REFERENCES cc.accounts (id) ON DELETE CASCADE,
    languages   text[] NOT NULL DEFAULT '{}',
    capacity    jsonb NOT NULL DEFAULT '{"voice": 1}'   -- channel -> concurrent contacts
);

CREATE TABLE cc.agent_skills (
    account_id  bigint NOT NULL REFERENCES cc.agents (account_id) ON DELETE CASCADE,
    skill       text NOT NULL REFERENCES cc.skills (skill) ON DELETE CASCADE,
    level       smallint NOT NULL CONSTRAINT agent_skills_level_check CHECK (level BETWEEN 1 AND 10),
    PRIMARY KEY (account_id, skill)
);

CREATE TABLE cc.not_ready_reasons (
    reason      text PRIMARY KEY CONSTRAINT not_ready_reasons_reason_check
                CHECK (reason ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    description text NOT NULL DEFAULT '',
    productive  boolean NOT NULL DEFAULT false          -- counts as work in occupancy reports
);
INSERT INTO cc.not_ready_reasons (reason, description, productive) VALUES
    ('break', 'break', false), ('lunch', 'lunch', false), ('training', 'training', true),
    ('backoffice', 'back-office work', true), ('missed', 'set by the system after missed offers', false);

CREATE TABLE cc.projects (
    project             text PRIMARY KEY CONSTRAINT projects_project_check
                        CHECK (project ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    name                text NOT NULL DEFAULT '',
    channel             text NOT NULL DEFAULT 'voice',
    priority            smallint NOT NULL DEFAULT 0,
    language            text REFERENCES cc.languages (language),
    strategy            text NOT NULL DEFAULT 'longest_idle',
    max_wait            double precision,               -- seconds, then overflow (or abandon)
    overflow_project    text REFERENCES cc.projects (project),
    sl_seconds          double precision NOT NULL DEFAULT 20,
    sl_pct              double precision NOT NULL DEFAULT 80,
    ring_timeout        double precision NOT NULL DEFAULT 20,
    wrap_up             double precision NOT NULL DEFAULT 10,
    preferred_fallback  double precision NOT NULL DEFAULT 30,
    paused              boolean NOT NULL DEFAULT false
);

CREATE TABLE cc.project_skills (
    project     text NOT NULL REFERENCES cc.projects (project) ON DELETE CASCADE,
    skill       text NOT NULL REFERENCES cc.skills (skill),
    min_level   smallint NOT NULL DEFAULT 1 CHECK (min_level BETWEEN 1 AND 10),
    PRIMARY KEY (project, skill)
);

-- entry rules (ACD-2): the first rule, in ascending position, whose conditions all hold decides
CREATE TABLE cc.entry_rules (
    id          serial PRIMARY KEY,
    position    integer NOT NULL,
    pilot       text,                       -- dialled pilot number, NULL = any
    caller_prefix text,                     -- caller number prefix, NULL = any
    data_key    text, data_value text,      -- a value collected by the IVR, NULL = any
    time_from   time, time_to time,         -- local time window, NULL = always
    project     text NOT NULL REFERENCES cc.projects (project) ON DELETE CASCADE
);

-- ---- state: enough for another node to resume -----------------------------------------------------
CREATE TABLE cc.agent_sessions (
    account_id  bigint PRIMARY KEY REFERENCES cc.agents (account_id) ON DELETE CASCADE,
    workplace   integer REFERENCES cc.workplaces (id),
    state       text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    since       timestamptz NOT NULL DEFAULT now(),
    node        text NOT NULL DEFAULT ''
);

CREATE TABLE cc.contacts_live (
    contact     text PRIMARY KEY,
    project     text NOT NULL REFERENCES cc.projects (project),
    channel     text NOT NULL DEFAULT 'voice',
    priority    smallint NOT NULL DEFAULT 0,
    enqueued_at timestamptz NOT NULL,
    state       text NOT NULL,              -- queued, offered, answered
    agent       bigint REFERENCES cc.accounts (id),
    preferred_agent bigint REFERENCES cc.accounts (id),
    data        jsonb NOT NULL DEFAULT '{}',
    owner       text NOT NULL DEFAULT ''    -- the service account that enqueued it (told when assigned)
);

-- ---- history: append-only, for reporting ----------------------------------------------------------
CREATE TABLE cc.agent_state_history (
    id          bigserial PRIMARY KEY,
    account_id  bigint NOT NULL,
    state       text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    cause       text NOT NULL DEFAULT '',   -- who or what changed it: agent, supervisor:<name>, system:<why>
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz
);
CREATE INDEX agent_state_history_account ON cc.agent_state_history (account_id, started_at);

CREATE TABLE cc.contact_history (
    contact     text PRIMARY KEY,
    project     text NOT NULL,
    channel     text NOT NULL,
    priority    smallint NOT NULL,
    enqueued_at timestamptz NOT NULL,
    first_offer_at timestamptz,
    answered_at timestamptz,
    ended_at    timestamptz,
    outcome     text,                       -- answered, abandoned, overflowed, cancelled
    agent       bigint,
    data        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX contact_history_enqueued ON cc.contact_history (enqueued_at);

CREATE TABLE cc.offer_history (
    id          bigserial PRIMARY KEY,
    contact     text NOT NULL,
    account_id  bigint NOT NULL,
    offered_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    outcome     text                        -- answered, no_answer, rejected, unreachable, cancelled
);
CREATE INDEX offer_history_account ON cc.offer_history (account_id, offered_at);

INSERT INTO cc.permissions (permission, description) VALUES
    ('acd.agent',      'log in as an agent, change own state, take contacts'),
    ('acd.supervise',  'see agents and projects live, change skills, force states, pause projects'),
    ('acd.configure',  'create and change projects, skills, reasons, entry rules'),
    ('contacts.enqueue', 'put contacts into projects and follow them (IVR, gateways)');
INSERT INTO cc.role_permissions (role, permission) VALUES
    ('admin', 'acd.agent'), ('admin', 'acd.supervise'), ('admin', 'acd.configure'), ('admin', 'contacts.enqueue'),
    ('supervisor', 'acd.supervise'),
    ('agent', 'acd.agent'),
    ('service', 'contacts.enqueue');
