//! The web UI end to end in headless Chromium: runs the suite in `tests/browser/` (`node run.mjs`) against this
//! crate's `latchkey` binary. The suite starts the server and a mock OAuth provider itself, walks the journeys a
//! person takes (set-up, log-in, connect through the consent popup, errors, edit, reconnect, delete, API keys,
//! presets, the Advanced settings, client credentials, device code) and saves a screenshot of each main page
//! under `target/browser-screenshots/`.
//!
//! It needs Debian's `chromium` at `/usr/bin/chromium`, `node`, and `npm ci` run in `tests/browser/`. Without
//! them the test says why and passes, unless `LATCHKEY_REQUIRE_BROWSER=1` (as CI sets it): then it fails.
//!
//! A second, shorter suite (`node firefox.mjs`) walks the main path in Debian's `firefox-esr` through
//! puppeteer-core over WebDriver BiDi; without `firefox-esr` it is skipped the same way, unless
//! `LATCHKEY_REQUIRE_FIREFOX=1`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The suite bounds its own waits and stops itself after 150 s; this bound catches a hung `node`.
const SUITE_TIMEOUT: Duration = Duration::from_secs(240);
const CHROMIUM: &str = "/usr/bin/chromium";
const FIREFOX: &str = "/usr/lib/firefox-esr/firefox-esr";

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("browser")
}

/// What a suite needs: the browser's executable and its apt package, and the npm package that drives it.
struct Suite {
    script: &'static str,
    browser: &'static str,
    apt_package: &'static str,
    driver: &'static str,
    /// The variable that turns a skip into a failure.
    require: &'static str,
}

/// Why the suite cannot run here, if it cannot.
fn missing_prerequisite(dir: &Path, suite: &Suite) -> Option<String> {
    if !Path::new(suite.browser).exists() {
        return Some(format!("{} is missing (apt-get install {})", suite.browser, suite.apt_package));
    }
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !node.is_ok_and(|status| status.success()) {
        return Some("node is not on the PATH".to_owned());
    }
    if !dir.join("node_modules").join(suite.driver).is_dir() {
        return Some(format!("{} is not installed (run npm ci in {})", suite.driver, dir.display()));
    }
    None
}

/// Waits for the suite, killing its whole process group (node, Chromium, the server) when it takes too long.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("poll the browser suite") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            kill_group(child);
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kill_group(child: &mut Child) {
    #[cfg(unix)]
    {
        // The suite runs in a process group of its own (see `main`): end all of it, not only node.
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn run_suite(suite: &Suite) {
    let dir = suite_dir();
    let required = std::env::var(suite.require).is_ok_and(|value| value == "1");
    if let Some(reason) = missing_prerequisite(&dir, suite) {
        assert!(!required, "{}=1, but the browser tests ({}) cannot run: {reason}", suite.require, suite.script);
        // Straight to stderr, past the test harness's capture, so that the skip is seen.
        let _ = writeln!(std::io::stderr(), "skipping the browser tests of {}: {reason}", suite.script);
        return;
    }

    let mut command = Command::new("node");
    command
        .arg(suite.script)
        .current_dir(&dir)
        .env("LATCHKEY_BIN", env!("CARGO_BIN_EXE_latchkey"))
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command.spawn().unwrap_or_else(|err| panic!("start node {}: {err}", suite.script));
    let status = wait_bounded(&mut child, SUITE_TIMEOUT);
    let status = status.unwrap_or_else(|| panic!("{} did not finish within {SUITE_TIMEOUT:?}", suite.script));
    assert!(status.success(), "{} failed ({status}); its output above says which journey and why", suite.script);
}

#[test]
fn web_ui_journeys_in_headless_chromium() {
    run_suite(&Suite {
        script: "run.mjs",
        browser: CHROMIUM,
        apt_package: "chromium",
        driver: "playwright-core",
        require: "LATCHKEY_REQUIRE_BROWSER",
    });
}

#[test]
fn web_ui_main_path_in_headless_firefox() {
    run_suite(&Suite {
        script: "firefox.mjs",
        browser: FIREFOX,
        apt_package: "firefox-esr",
        driver: "puppeteer-core",
        require: "LATCHKEY_REQUIRE_FIREFOX",
    });
}
