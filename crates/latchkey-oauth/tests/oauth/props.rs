//! Property tests: the token response parser accepts anything without panicking.

use latchkey_core::settings::OAuthSettings;
use latchkey_oauth::{OAuthError, parse_token_response};
use proptest::prelude::*;

fn settings() -> OAuthSettings {
    serde_json::from_value(serde_json::json!({
        "authorization_url": "https://p.example/a", "token_url": "https://p.example/t", "client_id": "id",
        "default_expires_in": 60
    }))
    .expect("settings")
}

fn content_types() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/x-www-form-urlencoded".to_owned())),
        Just(Some("text/plain; charset=utf-8".to_owned())),
        any::<String>().prop_map(Some),
    ]
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(
        status in 0_u16..1000,
        content_type in content_types(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let _ = parse_token_response(status, content_type.as_deref(), &body, &settings());
    }

    #[test]
    fn never_panics_on_json_shaped_answers(
        status in prop_oneof![Just(200_u16), Just(400_u16), 100_u16..600],
        access_token in proptest::option::of(any::<String>()),
        expires_in in proptest::option::of(prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            any::<String>().prop_map(serde_json::Value::from),
        ]),
        error in proptest::option::of(any::<String>()),
        description in proptest::option::of(any::<String>()),
    ) {
        let mut object = serde_json::Map::new();
        if let Some(v) = access_token { object.insert("access_token".into(), v.into()); }
        if let Some(v) = expires_in { object.insert("expires_in".into(), v); }
        if let Some(v) = error { object.insert("error".into(), v.into()); }
        if let Some(v) = description { object.insert("error_description".into(), v.into()); }
        let body = serde_json::Value::Object(object).to_string();
        match parse_token_response(status, Some("application/json"), body.as_bytes(), &settings()) {
            Ok(tokens) => prop_assert!(!tokens.access_token.is_empty()),
            Err(OAuthError::Rejected { description: Some(d), .. }) => {
                prop_assert!(d.chars().count() <= 300);
                prop_assert!(!d.chars().any(char::is_control));
            }
            Err(_) => {}
        }
    }
}
