-- 0006: legs to the IVR are recorded too (a call goes through the IVR first, then is bridged to the
-- agent by RFC 3725 third-party call control; docs/sip.md).
ALTER TABLE cc.call_legs DROP CONSTRAINT call_legs_kind_check;
ALTER TABLE cc.call_legs ADD CONSTRAINT call_legs_kind_check CHECK (kind IN ('caller', 'agent', 'ivr'));
