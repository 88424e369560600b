-- 0006: legs to the IVR (a call goes through the IVR first, then is bridged to the agent by RFC 3725
-- third-party call control) and to customers an agent calls out (OUT-4) are recorded too; docs/sip.md.
ALTER TABLE cc.call_legs DROP CONSTRAINT call_legs_kind_check;
ALTER TABLE cc.call_legs ADD CONSTRAINT call_legs_kind_check CHECK (kind IN ('caller', 'agent', 'ivr', 'customer'));
