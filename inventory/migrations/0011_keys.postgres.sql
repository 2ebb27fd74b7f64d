-- MICA inventory schema, version 11 (postgres): key inventory completeness.
--
-- Not every key signs through the metered signer: HMAC keys (EAB, webhook
-- alerts) and the sealing keys are used where they live. metering says
-- how the usage columns are filled: 'signer' (counted by the signing path,
-- ca.MeteredKeys), 'site' (counted where the key is used) or 'none' (not
-- metered: the columns stay empty on purpose, and the UI says so).
ALTER TABLE keys ADD COLUMN metering TEXT NOT NULL DEFAULT 'signer';
