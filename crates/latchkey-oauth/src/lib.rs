//! latchkey's side of the OAuth 2.0 conversation with providers: the hardened outbound HTTP client, the
//! Authorization Code grant with PKCE, refresh and revocation, client credentials and device authorization, authorization server metadata discovery, and the
//! parsing of token responses.
//!
//! Built on plain `reqwest` rather than an OAuth library, because providers need JSON request bodies, nested
//! response fields and other departures from RFC 6749 that such libraries do not let through.
//!
//! Nothing here logs, formats or returns a secret: client secrets, codes, verifiers and tokens travel as
//! [`latchkey_core::Secret`] and are exposed only to build the request that carries them.

mod client;
mod discovery;
mod error;
mod flow;
mod grants;
pub mod guard;
mod response;
mod webhook;

pub use client::{HttpClient, OutboundPolicy};
pub use discovery::{ProviderMetadata, discover, metadata_urls};
pub use error::OAuthError;
pub use flow::{
    PkcePair, RESERVED_AUTHORIZATION_PARAMS, RESERVED_REQUEST_HEADERS, RESERVED_TOKEN_PARAMS,
    authorization_request_url, check_request_header, describe_provider_error, exchange_code, refresh, revoke,
};
pub use grants::{DEVICE_CODE_GRANT, DevicePoll, client_credentials, poll_device_token, start_device_authorization};
pub use guard::{
    AllowList, Lookup, LookupFuture, METADATA_HOSTS, METADATA_V4, METADATA_V6, SystemLookup, check_browser_url,
    check_url, decide, is_forbidden_ip, is_metadata_host, is_metadata_ip,
};
pub use response::{
    DeviceAuthorization, MAX_KEPT_VALUE_CHARS, TokenResponse, parse_device_authorization, parse_token_response,
};
pub use webhook::{SIGNATURE_HEADER, post_webhook};
