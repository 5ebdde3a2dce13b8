//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::providers::{ProviderList, ProviderParamView, ProviderView};
use super::views::{AuthorizingEnvelope, ConnectionEnvelope, ConnectionList, ConnectionView, TokenBody};
use crate::service::connections::ConnectionInput;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "latchkey", description = "OAuth 2.0 connections and their tokens, by handle."),
    paths(
        super::connections::create,
        super::connections::list,
        super::connections::get,
        super::connections::update,
        super::connections::delete,
        super::connections::authorize,
        super::token::token,
        super::audit::connection_records,
        super::audit::user_records,
        super::providers::list,
    ),
    components(schemas(ErrorBody, ConnectionInput, ConnectionView, ConnectionEnvelope, AuthorizingEnvelope, ConnectionList, TokenBody,
        ProviderList, ProviderView, ProviderParamView, super::audit::AuditPage, super::audit::AuditRecordView)),
    modifiers(&ApiKeyScheme),
)]
struct ApiDoc;

/// `GET /api/v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    let mut document = ApiDoc::openapi();
    document.merge(<crate::webhooks::api::WebhookDoc as OpenApi>::openapi());
    document.merge(<super::api_keys::ApiKeyDoc as OpenApi>::openapi());
    Json(document)
}
