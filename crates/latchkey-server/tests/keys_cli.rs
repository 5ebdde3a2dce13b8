//! `latchkey keys ...` as an operator runs it: rotate with a key file, status, retire (refused for the current
//! key), and the steps for keys kept in `LATCHKEY_MASTER_KEY`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_latchkey");

/// Runs `latchkey ARGS` in `dir`; `master_key` sets `LATCHKEY_MASTER_KEY`, else the key file of `dir` is used.
async fn run(dir: &Path, args: &[&str], master_key: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_remove("LATCHKEY_MASTER_KEY")
        .env_remove("LATCHKEY_DATABASE_URL")
        .env("LATCHKEY_LOG", "warn")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(key) = master_key {
        command.env("LATCHKEY_MASTER_KEY", key);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("latchkey finishes")
        .expect("latchkey runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The key ids `keys status` lists, in its order (current first), with their value counts.
fn listed(status: &str) -> Vec<(String, String)> {
    status
        .lines()
        .map(|line| {
            let id = line.split_whitespace().next().expect("a key id").to_owned();
            let count = line.split("  ").nth(2).unwrap_or_default().to_owned();
            (id, count)
        })
        .collect()
}

#[tokio::test]
async fn rotating_a_key_file_then_retiring_the_old_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, status, err) = run(dir.path(), &["keys", "status"], None).await;
    assert!(ok, "{err}");
    let before = listed(&status);
    assert_eq!(before.len(), 1, "{status}");
    assert!(status.contains("current  1 values  meta.key_check=1"), "{status}");
    let old = before[0].0.clone();

    let (ok, out, err) = run(dir.path(), &["keys", "rotate", "--batch-size", "1"], None).await;
    assert!(ok, "{err}");
    assert!(out.contains("0 remain under other keys"), "{out}");
    assert!(err.contains("added master key"), "{err}");

    let (_, status, _) = run(dir.path(), &["keys", "status"], None).await;
    let after = listed(&status);
    assert_eq!(after.len(), 2, "{status}");
    let new = after[0].0.clone();
    assert_ne!(new, old);
    assert!(status.contains(&format!("{old}  older, opens only  0 values")), "{status}");
    let key_file = std::fs::read_to_string(dir.path().join("latchkey-data/master.key")).expect("key file");
    assert_eq!(key_file.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).count(), 2);

    let (ok, _, err) = run(dir.path(), &["keys", "retire", &new], None).await;
    assert!(!ok);
    assert!(err.contains(&format!("key {new} is the current key")), "{err}");
    let (ok, _, err) = run(dir.path(), &["keys", "retire", "not-a-key"], None).await;
    assert!(!ok);
    assert!(err.contains("is not a key id"), "{err}");

    let (ok, _, err) = run(dir.path(), &["keys", "retire", &old], None).await;
    assert!(ok, "{err}");
    let (ok, status, err) = run(dir.path(), &["keys", "status"], None).await;
    assert!(ok, "the database opens with the new key alone: {err}");
    assert_eq!(listed(&status), vec![(new, "1 values".to_owned())]);
}

#[tokio::test]
async fn keys_from_the_environment_rotate_in_steps() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, old_key, err) = run(dir.path(), &["keys", "generate"], None).await;
    assert!(ok && err.contains("generated key"), "{err}");
    let old_key = old_key.trim().to_owned();
    assert_eq!(old_key.len(), 44);
    let (ok, _, err) = run(dir.path(), &["keys", "status"], Some(&old_key)).await;
    assert!(ok, "{err}");

    // Nothing to add the key to: refused, with the steps.
    let (ok, _, err) = run(dir.path(), &["keys", "rotate"], Some(&old_key)).await;
    assert!(!ok);
    assert!(err.contains("latchkey keys generate") && err.contains("LATCHKEY_MASTER_KEY=NEW,OLD"), "{err}");
    assert!(!err.contains(&old_key), "the key is never printed back");

    // The new key first, the old one after it: rotate seals everything with the new one.
    let (_, new_key, _) = run(dir.path(), &["keys", "generate"], None).await;
    let both = format!("{},{old_key}", new_key.trim());
    let (ok, out, err) = run(dir.path(), &["keys", "rotate"], Some(&both)).await;
    assert!(ok, "{err}");
    assert!(err.contains("finished the rotation"), "{err}");
    assert!(out.contains("0 remain under other keys"), "{out}");

    let (_, status, _) = run(dir.path(), &["keys", "status"], Some(&both)).await;
    let keys = listed(&status);
    assert_eq!(keys.len(), 2, "{status}");
    let (ok, _, err) = run(dir.path(), &["keys", "retire", &keys[1].0], Some(&both)).await;
    assert!(ok, "{err}");
    assert!(err.contains("remove it from LATCHKEY_MASTER_KEY"), "{err}");

    // The new key alone opens the database now; the old one alone no longer does.
    let (ok, _, err) = run(dir.path(), &["keys", "status"], Some(new_key.trim())).await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(dir.path(), &["keys", "status"], Some(&old_key)).await;
    assert!(!ok);
    assert!(err.contains("does not match this database"), "{err}");
}

#[tokio::test]
async fn api_keys_create_takes_an_expiry_in_days() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut create_user = Command::new(BIN);
    create_user
        .current_dir(dir.path())
        .env_remove("LATCHKEY_MASTER_KEY")
        .env_remove("LATCHKEY_DATABASE_URL")
        .args(["users", "create", "alice", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = create_user.spawn().expect("spawn");
    {
        use tokio::io::AsyncWriteExt as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"correct horse battery\n").await.expect("write");
    }
    assert!(child.wait().await.expect("users create").success());

    let (ok, out, err) = run(dir.path(), &["api-keys", "create", "alice", "--expires-in-days", "0"], None).await;
    assert!(!ok && out.is_empty());
    assert!(err.contains("--expires-in-days: an API key expires after 1 to 3650 days, not 0"), "{err}");

    let (ok, out, err) = run(dir.path(), &["api-keys", "create", "alice", "--expires-in-days", "30"], None).await;
    assert!(ok, "{err}");
    assert!(out.trim().starts_with("lk_") && out.lines().count() == 1, "{out}");

    use sqlx::Connection as _;
    let url = format!("sqlite://{}", dir.path().join("latchkey-data/latchkey.db").display());
    let mut db = sqlx::SqliteConnection::connect(&url).await.expect("open the database");
    let lifetimes: Vec<Option<i64>> = sqlx::query_scalar("SELECT expires_at - created_at FROM api_keys")
        .fetch_all(&mut db)
        .await
        .expect("read the keys");
    assert_eq!(lifetimes, vec![Some(30 * 86_400)]);
}

/// Webhook signing secrets of `count` users, sealed with the current key: plenty of rows to re-seal.
async fn fill(store: &dyn latchkey_core::store::Store, keyring: &latchkey_crypto::Keyring, count: usize) {
    use latchkey_core::model::{User, UserId};
    use latchkey_core::{Secret, Timestamp, webhook::Webhook};
    for i in 0..count {
        let id = UserId::random();
        let user = User {
            username: format!("user-{i}"),
            id: id.clone(),
            password_hash: "not a hash: nobody logs in".to_owned(),
            is_admin: false,
            created_at: Timestamp(1_700_000_000),
        };
        store.insert_user(&user).await.expect("user");
        let aad = latchkey_crypto::Aad::new("webhooks", "secret", id.as_str());
        let secret = keyring.seal_secret(&Secret::new(format!("whsec-{id}")), &aad);
        let webhook = Webhook {
            user_id: id,
            url: "https://hooks.example/latchkey".to_owned(),
            secret,
            created_at: user.created_at,
            updated_at: user.created_at,
        };
        store.put_webhook(&webhook).await.expect("webhook");
    }
}

/// Opens every webhook secret with `keyring`; each must read back as it was written.
async fn assert_all_open(store: &dyn latchkey_core::store::Store, keyring: &latchkey_crypto::Keyring, count: usize) {
    let column = latchkey_core::sealed_columns::SEALED_COLUMNS
        .iter()
        .find(|c| c.table == "webhooks")
        .expect("webhooks are sealed");
    // Every value is "not under" a key id that no key has, so this reads them all.
    let cells = store.sealed_values_not_under(column, &[0, 0, 0, 0], None, 100_000).await.expect("read");
    assert_eq!(cells.len(), count);
    for cell in cells {
        let aad = latchkey_crypto::Aad::new("webhooks", "secret", &cell.row_id);
        let secret = keyring.open_secret(&cell.sealed, &aad).expect("every value opens");
        assert_eq!(secret.expose(), format!("whsec-{}", cell.row_id));
    }
}

#[tokio::test]
async fn a_rotation_killed_half_way_resumes_and_leaves_every_value_readable() {
    use tokio::io::AsyncBufReadExt as _;
    const ROWS: usize = 800;

    let dir = tempfile::tempdir().expect("temp dir");
    let (ok, _, err) = run(dir.path(), &["keys", "status"], None).await;
    assert!(ok, "{err}");
    let key_file = dir.path().join("latchkey-data/master.key");
    let url = format!("sqlite://{}", dir.path().join("latchkey-data/latchkey.db").display());
    let source = latchkey_crypto::KeySource::File(key_file.clone());
    let (store, keyring) = latchkey_server::bootstrap::open(&url, &source).await.expect("opens");
    let old = keyring.current_id();
    fill(store.as_ref(), &keyring, ROWS).await;

    // Killed (SIGKILL) as soon as it reports progress.
    let mut rotate = Command::new(BIN);
    rotate
        .current_dir(dir.path())
        .env_remove("LATCHKEY_MASTER_KEY")
        .env_remove("LATCHKEY_DATABASE_URL")
        .env("LATCHKEY_LOG", "warn")
        .args(["keys", "rotate", "--batch-size", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = rotate.spawn().expect("spawn");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let first = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("values again so far") {
                return line;
            }
        }
        panic!("the rotation ended without reporting progress");
    })
    .await
    .expect("progress within a minute");
    child.start_kill().expect("kill");
    let status = child.wait().await.expect("wait");
    assert!(!status.success(), "killed: {first}");

    // Half-way: both keys seal values, and every value opens with the key file's ring.
    let ring = latchkey_crypto::read_key_file(&key_file).expect("the key file is whole");
    let new = ring.current_id();
    assert_ne!(new, old);
    let usage = latchkey_server::keys::key_usage(store.as_ref(), &ring).await.expect("usage");
    let under = |id| usage.iter().find(|u| u.key == Some(id)).map_or(0, |u| u.values);
    assert!(under(old) > 0 && under(new) > 0, "stopped half-way: {usage:?}");
    assert_all_open(store.as_ref(), &ring, ROWS).await;

    // Run again: it finishes without adding a key.
    let (ok, out, err) = run(dir.path(), &["keys", "rotate"], None).await;
    assert!(ok, "{err}");
    assert!(err.contains(&format!("finished the rotation to master key {new}")), "{err}");
    assert!(out.contains("0 remain under other keys"), "{out}");
    let only_new = latchkey_crypto::read_key_file(&key_file).expect("key file");
    assert_eq!(only_new.key_ids(), vec![new, old], "no third key");
    let usage = latchkey_server::keys::key_usage(store.as_ref(), &only_new).await.expect("usage");
    assert_eq!(usage.iter().find(|u| u.key == Some(old)).map(|u| u.values), Some(0));
    assert_all_open(store.as_ref(), &latchkey_crypto::Keyring::new(keyring_key(&key_file), Vec::new()), ROWS).await;
}

/// The current (last) key of a key file, alone.
fn keyring_key(path: &Path) -> latchkey_crypto::MasterKey {
    let text = std::fs::read_to_string(path).expect("key file");
    let line = text.lines().rfind(|l| !l.trim().is_empty() && !l.starts_with('#')).expect("a key");
    latchkey_crypto::MasterKey::from_base64(line).expect("a key")
}
