-- 0001 accounts: identity configuration (SPEC INT-1: accounts, roles, scopes, permissions) and
-- workplaces (SPEC ARCH-3), plus the session-resume tokens SimProt hands out.
-- Applied by ctiserver.db.migrate inside one transaction; schema cc already exists at this point.
-- Constraint names are spelled out because ctiserver.accounts maps them to field names.

CREATE TABLE cc.scopes (
    scope       text PRIMARY KEY
                CONSTRAINT scopes_scope_check CHECK (scope ~ '^(\*|[a-z0-9][a-z0-9._/-]{0,63})$'),
    description text NOT NULL DEFAULT ''
);
INSERT INTO cc.scopes (scope, description) VALUES ('*', 'the whole contact centre');

CREATE TABLE cc.permissions (
    permission  text PRIMARY KEY,
    description text NOT NULL DEFAULT ''
);
INSERT INTO cc.permissions (permission, description) VALUES
    ('status.read',       'see agent, call and queue status'),
    ('events.watch',      'subscribe to live events'),
    ('accounts.read',     'list and view accounts'),
    ('accounts.manage',   'create, change and disable accounts, grant and revoke roles'),
    ('messages.send',     'send messages to agents and clients'),
    ('workplaces.read',   'list and view workplaces'),
    ('workplaces.manage', 'create and change workplaces'),
    ('sessions.read',     'list connected client sessions');

CREATE TABLE cc.roles (
    role        text PRIMARY KEY,
    description text NOT NULL DEFAULT ''
);
INSERT INTO cc.roles (role, description) VALUES
    ('admin',      'administrator: every permission'),
    ('supervisor', 'supervises agents: status, events, accounts (read), messages, workplaces (read), sessions'),
    ('agent',      'handles contacts: status and events'),
    ('service',    'another daemon or gateway: status, events, messages');

CREATE TABLE cc.role_permissions (
    role       text NOT NULL CONSTRAINT role_permissions_role_fkey
               REFERENCES cc.roles (role) ON DELETE CASCADE,
    permission text NOT NULL CONSTRAINT role_permissions_permission_fkey
               REFERENCES cc.permissions (permission) ON DELETE CASCADE,
    PRIMARY KEY (role, permission)
);
INSERT INTO cc.role_permissions (role, permission)
    SELECT 'admin', permission FROM cc.permissions;
INSERT INTO cc.role_permissions (role, permission) VALUES
    ('supervisor', 'status.read'),
    ('supervisor', 'events.watch'),
    ('supervisor', 'accounts.read'),
    ('supervisor', 'messages.send'),
    ('supervisor', 'workplaces.read'),
    ('supervisor', 'sessions.read'),
    ('agent',      'status.read'),
    ('agent',      'events.watch'),
    ('service',    'status.read'),
    ('service',    'events.watch'),
    ('service',    'messages.send');

CREATE TABLE cc.accounts (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL
                  CONSTRAINT accounts_username_key UNIQUE
                  CONSTRAINT accounts_username_check CHECK (username ~ '^[a-z0-9._@-]{1,64}$'),
    display_name  text NOT NULL DEFAULT '',
    kind          text NOT NULL
                  CONSTRAINT accounts_kind_check CHECK (kind IN ('agent', 'supervisor', 'admin', 'service')),
    scope         text NOT NULL DEFAULT '*'
                  CONSTRAINT accounts_scope_fkey REFERENCES cc.scopes (scope),
    password_hash text NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- A role held within a scope. Deleting a role or scope still in use is refused (no cascade).
CREATE TABLE cc.account_roles (
    account_id bigint NOT NULL CONSTRAINT account_roles_account_id_fkey
               REFERENCES cc.accounts (id) ON DELETE CASCADE,
    role       text NOT NULL CONSTRAINT account_roles_role_fkey REFERENCES cc.roles (role),
    scope      text NOT NULL DEFAULT '*' CONSTRAINT account_roles_scope_fkey REFERENCES cc.scopes (scope),
    PRIMARY KEY (account_id, role, scope)
);
CREATE INDEX account_roles_role_idx ON cc.account_roles (role);

CREATE TABLE cc.workplaces (
    id         serial PRIMARY KEY,
    name       text NOT NULL CONSTRAINT workplaces_name_key UNIQUE,
    extension  text NOT NULL CONSTRAINT workplaces_extension_key UNIQUE,
    sip_uri    text NOT NULL DEFAULT '',
    location   text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);

-- State, not configuration (DATA-1), but it lives and dies with the account. Only the SHA-256 of
-- a token is stored, so a copy of the table does not let anyone resume a session.
CREATE TABLE cc.resume_tokens (
    token_hash bytea PRIMARY KEY
               CONSTRAINT resume_tokens_token_hash_check CHECK (octet_length(token_hash) = 32),
    account_id bigint NOT NULL CONSTRAINT resume_tokens_account_id_fkey
               REFERENCES cc.accounts (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX resume_tokens_account_id_idx ON cc.resume_tokens (account_id);
CREATE INDEX resume_tokens_expires_at_idx ON cc.resume_tokens (expires_at);
