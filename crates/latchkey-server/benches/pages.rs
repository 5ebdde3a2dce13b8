//! How fast the web UI's pages answer with a full list: the real server in-process (SQLite in a temporary folder,
//! a loopback port), one person with 1,000 connections (a quarter pending, half connected, a quarter needing
//! re-authorization) and 25 API keys, logged in through the form. Each page is fetched over HTTP many times;
//! the table of p50 / p95 / max latencies is printed and written to `docs/benchmarks.md`, replacing only its
//! "Web UI pages" section (other sections of that file are other measurements' and stay as they are).
//!
//! Run with `cargo bench -p latchkey-server --bench pages`. It measures; it asserts nothing about time.

#[path = "../tests/api/helpers.rs"]
#[allow(dead_code, reason = "shared with the API tests; the benchmark uses only part of it")]
mod helpers;
#[path = "../tests/api/provider.rs"]
#[allow(dead_code, reason = "shared with the API tests; the benchmark uses only part of it")]
mod provider;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use latchkey_core::model::{ConnectionId, Status};
use latchkey_core::{Clock, Handle, Secret, SystemClock};
use latchkey_server::sealing::{self, Column};
use latchkey_server::service::api_keys;
use provider::MockProvider;

/// How many connections the person has.
const CONNECTIONS: usize = 1_000;
/// How many API keys the person has.
const API_KEYS: usize = 25;
/// Requests before measuring, per page.
const WARM_UP: usize = 20;
/// The command that runs this benchmark, as the report states it.
const COMMAND: &str = "cargo bench -p latchkey-server --bench pages";

/// One measured page.
struct Measured {
    name: &'static str,
    path: String,
    /// The body as sent to a browser that accepts gzip, and unzipped.
    sent: usize,
    bytes: usize,
    samples: Vec<Duration>,
}

impl Measured {
    fn percentile(&self, p: usize) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        let index = (sorted.len() * p).div_ceil(100).saturating_sub(1);
        sorted[index.min(sorted.len() - 1)]
    }

    fn max(&self) -> Duration {
        self.samples.iter().copied().max().unwrap_or_default()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let table = runtime.block_on(run());
    print!("{table}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/benchmarks.md");
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    match std::fs::write(path, with_section(&existing, &report(&table))) {
        Ok(()) => println!("written to docs/benchmarks.md"),
        Err(err) => eprintln!("could not write {path}: {err}"),
    }
}

/// Starts the server, fills it, logs in and measures; returns the table in Markdown.
async fn run() -> String {
    let app = helpers::spawn_app().await;
    let provider = MockProvider::start("client-1", "bench-secret").await;
    let caller = app.caller("alice", None).await;
    // One connection through the real flow: the others are copies of it with their own ids, handles and
    // freshly sealed secrets, inserted through the store in one statement each.
    app.connect(&caller, "template", &provider, "bench-secret").await;
    let store = app.state.store.as_ref();
    let template = store.connection(&caller.user.id, &Handle::parse("template").expect("handle")).await;
    let template = template.expect("store").expect("the template connection");
    store.delete_connection(&template.id).await.expect("delete the template");
    let keyring = &app.state.keyring;
    let now = app.clock.now();
    let started = Instant::now();
    for i in 0..CONNECTIONS {
        let mut c = template.clone();
        c.id = ConnectionId::random();
        c.handle = Handle::parse(&format!("service-{i:04}")).expect("handle");
        c.name = format!("Service {i:04} <api>");
        c.client_secret = Some(sealing::seal(keyring, &c.id, Column::ClientSecret, &Secret::new("bench-secret")));
        let offset = i64::try_from(i).expect("small");
        match i % 4 {
            0 => {
                c.status = Status::Pending;
                c.tokens = None;
                c.last_refreshed_at = None;
                c.refresh_at = None;
            }
            kind => {
                let mut tokens = template.tokens.clone().expect("the template has tokens");
                tokens.access_token =
                    sealing::seal(keyring, &c.id, Column::AccessToken, &Secret::new(format!("access-{i}")));
                tokens.refresh_token =
                    Some(sealing::seal(keyring, &c.id, Column::RefreshToken, &Secret::new(format!("refresh-{i}"))));
                tokens.expires_at = Some(now.plus_secs(60 * (offset % 120) - 600));
                tokens.obtained_at = now.plus_secs(-60 * offset);
                c.tokens = Some(tokens);
                c.last_refreshed_at = Some(now.plus_secs(-60 * offset));
                if kind == 3 {
                    c.status = Status::NeedsReauth;
                    c.last_error = Some(format!(
                        "the provider rejected the refresh token of 'service-{i:04}': reconnect it in the UI"
                    ));
                } else {
                    c.status = Status::Connected;
                }
            }
        }
        store.insert_connection(&c).await.expect("insert a connection");
    }
    for i in 0..API_KEYS {
        let handles = (i % 2 == 1).then(|| vec![Handle::parse(&format!("service-{i:04}")).expect("handle")]);
        api_keys::create(store, &caller.user, &format!("key {i}"), handles, now).await.expect("API key");
    }
    println!("filled: {CONNECTIONS} connections and {API_KEYS} API keys in {:.1} s", started.elapsed().as_secs_f64());

    let person = helpers::browser();
    let login = person
        .post(app.url("/login"))
        .form(&[("username", "alice"), ("password", "correct horse battery")])
        .send()
        .await
        .expect("log in");
    assert!(login.status().is_success(), "logging in answered {}", login.status());
    let anonymous = helpers::browser();

    let pages: [(&'static str, &str, &reqwest::Client, usize); 8] = [
        ("list (OAuth2 Tokens, 1,000 rows)", "/connections", &person, 200),
        ("new-connection form", "/connections/new", &person, 500),
        ("a preset's form (Zendesk)", "/connections/new?provider=zendesk", &person, 500),
        ("edit form", "/connections/service-0500/edit", &person, 500),
        ("API keys page", "/api-keys", &person, 500),
        ("login page", "/login", &anonymous, 500),
        ("one row (after a popup)", "/connections/service-0501/row", &person, 500),
        ("handle check", "/connections/handle-check?handle=service-0999", &person, 500),
    ];
    let mut results = Vec::new();
    for (name, path, client, iterations) in pages {
        results.push(measure(&app, client, name, path, iterations).await);
    }
    app.stop().await;

    let mut table = String::from("| page | path | size | sent (gzip) | requests | p50 ms | p95 ms | max ms |\n");
    table.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for m in &results {
        let _ = writeln!(
            table,
            "| {} | `{}` | {} KiB | {} KiB | {} | {} | {} | {} |",
            m.name,
            m.path,
            m.bytes.div_ceil(1024),
            m.sent.div_ceil(1024),
            m.samples.len(),
            ms(m.percentile(50)),
            ms(m.percentile(95)),
            ms(m.max())
        );
    }
    table
}

/// Fetches `path` `iterations` times after a warm-up, accepting gzip as browsers do; each sample is the time to
/// the last byte of the (compressed) body. One more request without gzip gives the page's own size.
async fn measure(
    app: &helpers::TestApp,
    client: &reqwest::Client,
    name: &'static str,
    path: &str,
    iterations: usize,
) -> Measured {
    let url = app.url(path);
    let mut sent = 0;
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..WARM_UP + iterations {
        let start = Instant::now();
        let response = client.get(&url).header(reqwest::header::ACCEPT_ENCODING, "gzip").send().await.expect("request");
        let status = response.status();
        let body = response.bytes().await.expect("body");
        let elapsed = start.elapsed();
        assert!(status.is_success(), "{path} answered {status}");
        sent = body.len();
        if i >= WARM_UP {
            samples.push(elapsed);
        }
    }
    let bytes = client.get(&url).send().await.expect("request").bytes().await.expect("body").len();
    Measured { name, path: path.to_owned(), sent, bytes, samples }
}

/// The CPU model, from `/proc/cpuinfo`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `n` with a comma between thousands: `1,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The heading of this benchmark's section in `docs/benchmarks.md`.
const SECTION: &str = "## Web UI pages\n";

/// `file` with its "Web UI pages" section (up to the next `## ` heading) replaced by `section`, or with
/// `section` added after the title when it has none yet.
fn with_section(file: &str, section: &str) -> String {
    let Some(start) = file.find(SECTION) else {
        let title = "# Benchmarks\n\n";
        let rest = file.strip_prefix(title).unwrap_or(file);
        return format!("{title}{section}{}{rest}", if rest.is_empty() { "" } else { "\n" });
    };
    let after = start + SECTION.len();
    let end = file[after..].find("\n## ").map_or(file.len(), |i| after + i + 1);
    format!("{}{section}{}{}", &file[..start], if end < file.len() { "\n" } else { "" }, &file[end..])
}

/// The "Web UI pages" section of `docs/benchmarks.md`: what was measured, where, how, and the table.
fn report(table: &str) -> String {
    let date = SystemClock.now().to_rfc3339();
    let date = date.split('T').next().unwrap_or(&date);
    let cpus = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!(
        "{SECTION}\n\
         How long each main page of the web UI takes to answer when the logged-in person has {people} \
         connections (a quarter pending, half connected, a quarter needing re-authorization) and {API_KEYS} API \
         keys. The real server runs in-process with SQLite in a temporary folder and is fetched over loopback \
         HTTP, one request at a time, after {WARM_UP} warm-up requests per page, accepting gzip as browsers do; a \
         sample is the time until the last byte of the body has arrived. \"size\" is the page itself, \"sent\" what \
         crossed the wire gzipped. The goal is well under 50 ms per page.\n\n\
         - date: {date}\n\
         - machine: {cpus} CPUs (nproc), {cpu}\n\
         - command: `{COMMAND}` (release profile)\n\n\
         {table}\n\
         The list is one query and one template render; no row causes a query of its own. The query is \
         `list_connection_summaries`, which on SQLite reads only the columns the list shows (no sealed tokens or \
         secrets, the scopes picked out of the settings by `json_extract`): reading whole connections instead \
         took about 25 ms for 1,000 rows and put the list at 52 ms p50. The rows keep their markup free of \
         indentation, and carry no snippets: \"Use it\" (curl, the command line, the `getOAuthToken` call) is \
         rendered once per list with a placeholder handle that `app.js` fills in when a row's \"Use it\" opens, \
         and the `getOAuthToken` function once below the list. With three snippets in every row the list weighed \
         3,436 KiB.\n\n\
         No test asserts these timings: run the command again to update this file.\n",
        cpu = cpu_model(),
        people = thousands(CONNECTIONS),
    )
}
