//! The web UI end to end in headless Chromium: runs the suite in `tests/browser/` (`node run.mjs`) against this
//! crate's `latchkey` binary. The suite starts the server and a mock OAuth provider itself, walks the journeys a
//! person takes (set-up, log-in, connect through the consent popup, errors, edit, reconnect, delete, API keys)
//! and saves a screenshot of each main page under `target/browser-screenshots/`.
//!
//! It needs Debian's `chromium` at `/usr/bin/chromium`, `node`, and `npm ci` run in `tests/browser/`. Without
//! them the test says why and passes, unless `LATCHKEY_REQUIRE_BROWSER=1` (as CI sets it): then it fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The suite bounds its own waits and stops itself after 150 s; this bound catches a hung `node`.
const SUITE_TIMEOUT: Duration = Duration::from_secs(240);
const CHROMIUM: &str = "/usr/bin/chromium";

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("browser")
}

/// Why the suite cannot run here, if it cannot.
fn missing_prerequisite(dir: &Path) -> Option<String> {
    if !Path::new(CHROMIUM).exists() {
        return Some(format!("{CHROMIUM} is missing (apt-get install chromium)"));
    }
    let node = Command::new("node").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if !node.is_ok_and(|status| status.success()) {
        return Some("node is not on the PATH".to_owned());
    }
    if !dir.join("node_modules").join("playwright-core").is_dir() {
        return Some(format!("playwright-core is not installed (run npm ci in {})", dir.display()));
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

#[test]
fn web_ui_journeys_in_headless_chromium() {
    let dir = suite_dir();
    let required = std::env::var("LATCHKEY_REQUIRE_BROWSER").is_ok_and(|value| value == "1");
    if let Some(reason) = missing_prerequisite(&dir) {
        assert!(!required, "LATCHKEY_REQUIRE_BROWSER=1, but the browser tests cannot run: {reason}");
        // Straight to stderr, past the test harness's capture, so that the skip is seen.
        let _ = writeln!(std::io::stderr(), "skipping the browser tests: {reason}");
        return;
    }

    let mut command = Command::new("node");
    command
        .arg("run.mjs")
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
    let mut child = command.spawn().expect("start node run.mjs");
    let status = wait_bounded(&mut child, SUITE_TIMEOUT);
    let status = status.unwrap_or_else(|| panic!("the browser suite did not finish within {SUITE_TIMEOUT:?}"));
    assert!(status.success(), "the browser suite failed ({status}); its output above says which journey and why");
}
