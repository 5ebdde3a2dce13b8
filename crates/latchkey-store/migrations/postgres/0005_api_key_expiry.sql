-- An API key may expire: from expires_at (Unix seconds) on it is refused. NULL means it never expires.
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT;
