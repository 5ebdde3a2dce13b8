//! What the HTTP API, the web UI and the CLI do alike: create and edit connections, make authorization links,
//! create users and API keys. Handlers stay thin and call these.

pub mod api_keys;
pub mod connections;
pub mod grants;
pub mod password_checks;
pub mod settings;
pub mod users;
