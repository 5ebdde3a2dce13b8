//! Property tests: the token response parser accepts anything without panicking, every answer it accepts yields
//! a non-empty access token, and a token at the mapped path of `token_response_map` is found.

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

/// A dotted path of one to three short segments, some of them array indexes.
fn paths() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof!["[a-z_]{1,6}", "[0-2]"], 1..4).prop_map(|segments| segments.join("."))
}

/// Settings with an arbitrary response map and kept fields.
fn mapped_settings() -> impl Strategy<Value = OAuthSettings> {
    (
        proptest::option::of(paths()),
        proptest::option::of(paths()),
        proptest::option::of(paths()),
        proptest::option::of(paths()),
        proptest::collection::vec(paths(), 0..4),
        proptest::option::of(1_u64..100_000),
    )
        .prop_map(|(access, refresh, expires_in, expires_at, keep, default_expires_in)| {
            let mut s = settings();
            s.token_response_map.access_token = access;
            s.token_response_map.refresh_token = refresh;
            s.token_response_map.expires_in = expires_in;
            s.token_response_map.expires_at = expires_at;
            s.keep_response_fields = keep;
            s.default_expires_in = default_expires_in;
            s
        })
}

/// Arbitrary JSON up to a few levels deep, with keys from a small alphabet so that paths often hit.
fn json_values() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z_]{1,6}|[0-2]", inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Puts `value` at `path` inside `root`, making objects on the way (array indexes become object keys).
fn place(root: &mut serde_json::Value, path: &str, value: serde_json::Value) {
    let mut current = root;
    for segment in path.split('.') {
        if !current.is_object() {
            *current = serde_json::json!({});
        }
        current = current.as_object_mut().expect("object").entry(segment).or_insert(serde_json::Value::Null);
    }
    *current = value;
}

proptest! {
    #[test]
    fn arbitrary_bytes_under_any_map_never_panic_and_every_success_has_a_token(
        status in prop_oneof![Just(200_u16), 0_u16..1000],
        content_type in content_types(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        settings in mapped_settings(),
    ) {
        if let Ok(tokens) = parse_token_response(status, content_type.as_deref(), &body, &settings) {
            prop_assert!(!tokens.access_token.is_empty());
            prop_assert!((200..300).contains(&status));
        }
    }

    #[test]
    fn any_json_answer_under_any_map_yields_a_token_or_an_error(
        status in prop_oneof![Just(200_u16), Just(400_u16), 100_u16..600],
        document in json_values(),
        settings in mapped_settings(),
    ) {
        let body = document.to_string();
        match parse_token_response(status, Some("application/json"), body.as_bytes(), &settings) {
            Ok(tokens) => {
                prop_assert!(!tokens.access_token.is_empty());
                let access = settings.token_response_map.path("access_token").unwrap_or("access_token");
                let refresh = settings.token_response_map.path("refresh_token").unwrap_or("refresh_token");
                for (key, value) in &tokens.extra {
                    prop_assert!(settings.keep_response_fields.contains(key));
                    prop_assert!(key != access && key != refresh, "a token path was kept");
                    prop_assert!(!value.chars().any(char::is_control));
                }
                prop_assert!(tokens.expires_in.is_some() || tokens.expires_at.is_some() || settings.default_expires_in.is_none());
            }
            Err(err) => {
                let shown = err.to_string();
                prop_assert!(!shown.chars().any(char::is_control), "{}", shown);
            }
        }
    }

    #[test]
    fn a_token_placed_at_the_mapped_path_is_found(
        mut document in json_values(),
        access_path in paths(),
        token in "[A-Za-z0-9._~-]{1,40}",
    ) {
        // A top-level `error` or `"ok": false` makes any answer an error; those are tested above.
        prop_assume!(!matches!(access_path.split('.').next(), Some("error" | "ok")));
        place(&mut document, &access_path, serde_json::Value::from(token.clone()));
        if let Some(object) = document.as_object_mut() {
            // The answer must not also carry an error for this property.
            object.remove("error");
            object.remove("ok");
        }
        let mut settings = settings();
        settings.token_response_map.access_token = Some(access_path);
        let tokens = parse_token_response(200, Some("application/json"), document.to_string().as_bytes(), &settings);
        prop_assert_eq!(tokens.map(|t| t.access_token.expose().to_owned()).ok(), Some(token));
    }
}
