-- A device key an admin revoked is refused (unix seconds; NULL while in use).
ALTER TABLE devices ADD COLUMN revoked_at INTEGER;
