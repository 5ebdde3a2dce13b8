-- Values a connection keeps from its token responses and its authorization callback (the settings
-- keep_response_fields and keep_callback_params), such as Salesforce's instance_url or QuickBooks' realmId.
-- A JSON object of strings; never a secret. NULL means none. Written with the tokens, in the same statement.
ALTER TABLE connections ADD COLUMN kept_values json;
