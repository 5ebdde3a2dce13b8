-- A pending connection holds no tokens. Earlier releases kept the tokens of a connection whose token URL or
-- client id had changed (status pending) and revived them when the new authorization failed, so a refresh token
-- could reach the new URL. Tokens obtained under an endpoint that is no longer in force are discarded here, as an
-- edit now discards them (see docs/decisions.md, "Where stored credentials may go").
UPDATE connections
SET access_token = NULL, refresh_token = NULL, token_type = NULL, expires_at = NULL, obtained_at = NULL,
    granted_scope = NULL, kept_values = NULL, refresh_at = NULL, retry_after = NULL, lease_owner = NULL,
    lease_until = NULL, token_version = token_version + 1
WHERE status = 'pending' AND access_token IS NOT NULL;
