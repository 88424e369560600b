-- 0003 waiting rules and pauses (SPEC ACD-2 waiting rules, MOD-2 "pause a channel").
-- Waiting rules of a project: announce position/EWT every announce_interval seconds (NULL: never),
-- offer a callback once a contact has waited callback_offer_after seconds (NULL: never); both count
-- from entering the project.
ALTER TABLE cc.projects
    ADD COLUMN announce_interval    double precision CONSTRAINT projects_announce_interval_check
                                    CHECK (announce_interval IS NULL OR announce_interval >= 5),
    ADD COLUMN callback_offer_after double precision CONSTRAINT projects_callback_offer_after_check
                                    CHECK (callback_offer_after IS NULL OR callback_offer_after >= 0);

-- a channel paused in every project (cc.projects.paused pauses one project); who and when, for audit
CREATE TABLE cc.paused_channels (
    channel     text PRIMARY KEY CONSTRAINT paused_channels_channel_check CHECK (channel IN ('voice', 'chat', 'email')),
    paused_by   text NOT NULL DEFAULT '',
    paused_at   timestamptz NOT NULL DEFAULT now()
);

-- cc.contact_history.outcome gains 'callback': the customer chose to be called back (OUT-1 picks
-- these up); the contact's data stays in the row.
COMMENT ON COLUMN cc.contact_history.outcome IS 'answered, abandoned, overflowed, callback, interrupted';
