//! `GET /api/v1/providers`: the provider presets a connection can start from (`"provider": "<id>"`).

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiResult, ErrorBody};
use super::extract::ApiCaller;
use crate::presets::{self, Preset};

/// A value a preset asks for, filling a `{name}` placeholder of its URLs.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderParamView {
    #[schema(example = "subdomain")]
    pub name: String,
    #[schema(example = "Zendesk subdomain")]
    pub label: String,
    #[schema(example = "acme for acme.zendesk.com")]
    pub hint: String,
    /// Used when the connection gives no value; without a default the value is required.
    pub default: Option<String>,
    /// Whether a connection must give it.
    pub required: bool,
}

/// One provider preset.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    /// The `provider` value of a connection.
    #[schema(example = "github")]
    pub id: String,
    #[schema(example = "GitHub")]
    pub name: String,
    /// The `connection_params` the preset asks for.
    pub connection_params: Vec<ProviderParamView>,
    /// The scopes asked for when the connection gives none, separated by spaces.
    #[schema(example = "read:user")]
    pub scopes: String,
    /// The `grant_type` values a connection from this preset can use, its default first; `device_code` appears
    /// where the preset knows the provider's device authorization endpoint.
    #[schema(example = json!(["authorization_code", "device_code"]))]
    pub grant_types: Vec<String>,
    /// The provider's own OAuth documentation.
    pub docs_url: String,
    /// Quirks worth knowing when registering the client.
    pub notes: String,
}

/// `{"providers": [...]}`, sorted by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub providers: Vec<ProviderView>,
}

impl From<&Preset> for ProviderView {
    fn from(preset: &Preset) -> Self {
        Self {
            id: preset.id.clone(),
            name: preset.name.clone(),
            connection_params: preset
                .connection_params
                .iter()
                .map(|p| ProviderParamView {
                    name: p.name.clone(),
                    label: p.label.clone(),
                    hint: p.hint.clone(),
                    default: p.default.clone(),
                    required: p.default.is_none(),
                })
                .collect(),
            scopes: preset.scopes.clone(),
            grant_types: preset.grant_types().into_iter().map(str::to_owned).collect(),
            docs_url: preset.docs_url.clone(),
            notes: preset.notes.clone(),
        }
    }
}

/// Lists the provider presets. `custom` (give the endpoints yourself) is always available besides these.
#[utoipa::path(get, path = "/api/v1/providers", tag = "providers", security(("api_key" = [])),
    responses((status = 200, body = ProviderList), (status = 401, body = ErrorBody)))]
pub async fn list(_caller: ApiCaller) -> ApiResult<Json<ProviderList>> {
    Ok(Json(ProviderList { providers: presets::all().iter().map(ProviderView::from).collect() }))
}
