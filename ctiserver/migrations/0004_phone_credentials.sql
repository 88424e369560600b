-- 0004 phone credentials: a workplace's phone registers its extension with SIP digest auth
-- (RFC 3261 §22, RFC 7616, RFC 8760; ctiserver.calls.registration).
-- Only the HA1s are stored, never the password: HA1 = H(extension ":" realm ":" password), lower-case
-- hex, H = MD5 and SHA-256. The realm is the core's sip.realm, so changing sip.realm makes every
-- stored HA1 useless: set the phones' passwords again afterwards (ctictl workplaces sip-password).
-- NULL (the default): the phone at this workplace may not register.
ALTER TABLE cc.workplaces
    ADD COLUMN sip_ha1_md5    text CONSTRAINT workplaces_sip_ha1_md5_check
                              CHECK (sip_ha1_md5 IS NULL OR sip_ha1_md5 ~ '^[0-9a-f]{32}$'),
    ADD COLUMN sip_ha1_sha256 text CONSTRAINT workplaces_sip_ha1_sha256_check
                              CHECK (sip_ha1_sha256 IS NULL OR sip_ha1_sha256 ~ '^[0-9a-f]{64}$');

COMMENT ON COLUMN cc.workplaces.sip_ha1_md5 IS 'MD5(extension:realm:password) of the phone; NULL: may not register';
COMMENT ON COLUMN cc.workplaces.sip_ha1_sha256 IS 'SHA-256(extension:realm:password) of the phone; NULL: may not register';
