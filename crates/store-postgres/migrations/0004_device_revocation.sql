-- A device key an admin revoked is refused (NULL while in use).
ALTER TABLE devices ADD COLUMN revoked_at TIMESTAMPTZ;
