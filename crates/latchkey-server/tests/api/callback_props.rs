//! Property test of the callback's query handling through the real server: whatever query the provider's
//! redirect (or an attacker) brings, `/oauth2/callback` answers a page that says what went wrong, never a 5xx or
//! a success, never echoes markup, and never calls the provider, even when the real `state` of a pending flow is
//! mixed in without the browser's cookie.

use proptest::prelude::*;

use crate::helpers::{TestApp, spawn_app};
use crate::provider::MockProvider;

/// Query strings as a provider or an attacker might send them: arbitrary text, and well-formed pairs of the
/// protocol's names with arbitrary values, repeated or not.
fn queries(real_state: String) -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("state".to_owned()),
        Just("code".to_owned()),
        Just("error".to_owned()),
        Just("error_description".to_owned()),
        Just("iss".to_owned()),
        "[a-z_]{1,12}",
    ];
    let value = prop_oneof![Just(real_state), any::<String>(), Just("<script>alert(1)</script>".to_owned())];
    let pairs = proptest::collection::vec((name, value), 0..6).prop_map(|pairs| {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            query.append_pair(k, v);
        }
        query.finish()
    });
    prop_oneof![pairs, any::<String>().prop_map(|s| s.replace(['#', ' '], "")), "[%&=a-z0-9+]{0,40}"]
}

#[test]
fn no_callback_query_breaks_the_callback() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (app, provider, state) = runtime.block_on(async {
        let app = spawn_app().await;
        let provider = MockProvider::start("client-1", "cs").await;
        let alice = app.caller("alice", None).await;
        let link = app.create_connection(&alice, "props", &provider, "cs").await;
        let start = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let response = start.get(&link).send().await.expect("start");
        let location = response.headers()["location"].to_str().expect("location").to_owned();
        let state = crate::helpers::state_in(&location);
        (app, provider, state)
    });
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let config = ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(query in queries(state.clone()))| {
        let url = format!("{}/oauth2/callback?{query}", app.address);
        let (status, page) = runtime.block_on(async {
            let response = client.get(&url).send().await.expect("callback");
            (response.status().as_u16(), response.text().await.expect("page"))
        });
        prop_assert!((400..500).contains(&status), "{} answered {}: {}", query, status, page);
        prop_assert!(!page.contains("<script>alert"), "{}", page);
        prop_assert!(provider.token_calls().is_empty(), "{} reached the provider", query);
    });
    runtime.block_on(stop(app));
}

async fn stop(app: TestApp) {
    app.stop().await;
}
