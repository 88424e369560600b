-- 0005 calls: history of telephone calls and their legs (SPEC TEL-1, TEL-2; the SIP trunk issue).
-- A call is one contact of the ACD (same id); its legs are the caller's (inbound from the trunk) and
-- each INVITE we sent to an agent's phone. Append-only, written in batches by the history writer.
CREATE TABLE cc.call_history (
    call        text PRIMARY KEY,               -- = cc.contact_history.contact
    caller      text NOT NULL DEFAULT '',
    pilot       text NOT NULL DEFAULT '',
    agent       bigint,                         -- the agent who talked to the caller (accounts.id)
    started_at  timestamptz NOT NULL,
    answered_at timestamptz,
    ended_at    timestamptz NOT NULL,
    connected   boolean NOT NULL,
    cause       text NOT NULL                   -- caller_hangup, agent_hangup, abandoned, rejected:404, acd:overflowed, ...
);
CREATE INDEX call_history_started ON cc.call_history (started_at);

CREATE TABLE cc.call_legs (
    leg         text PRIMARY KEY,               -- <call> for the caller's leg, <call>/<n> for the n-th agent leg
    call        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('caller', 'agent')),
    agent       bigint,
    peer        text NOT NULL,                  -- transport:host:port of the other side
    started_at  timestamptz NOT NULL,
    ringing_at  timestamptz,
    answered_at timestamptz,
    ended_at    timestamptz NOT NULL,
    status      integer,                        -- the final SIP status of the INVITE (ours or theirs)
    cause       text NOT NULL DEFAULT ''        -- why it ended: bye, cancel, no_answer, rejected, unreachable, ...
);
CREATE INDEX call_legs_call ON cc.call_legs (call);
