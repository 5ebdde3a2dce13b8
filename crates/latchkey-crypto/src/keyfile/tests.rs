//! Tests of the parent module.

use std::cell::RefCell;
use std::sync::Mutex;

use latchkey_core::Sealed;

use super::*;
use crate::keyring::Aad;

thread_local! {
    /// The directories [`sync_dir`] flushed on this thread (each test runs on its own thread).
    pub(super) static SYNCED_DIRS: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
}

/// The directories flushed on this thread since the last call.
fn synced_dirs() -> Vec<PathBuf> {
    SYNCED_DIRS.with(|synced| synced.take())
}

/// What `f` logs on this thread (debug and up, without colours), and its result.
fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().expect("log buffer").clone()).expect("UTF-8 logs");
    (value, text)
}

fn aad() -> Aad {
    Aad::new("providers", "client_secret", "7")
}

fn open_file(path: &Path) -> LoadedKeyring {
    load_keyring(&KeySource::File(path.to_owned())).expect("the key file loads")
}

#[test]
fn a_missing_key_file_is_generated_private_and_reloads_to_the_same_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data").join("nested").join("master.key");

    let first = open_file(&path);
    assert!(first.generated);
    assert_eq!(first.description, format!("key file {}", path.display()));
    let sealed = first.keyring.seal(b"client secret", &aad());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(path.parent().expect("parent")).expect("metadata").permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    let second = open_file(&path);
    assert!(!second.generated);
    assert_eq!(second.keyring.current_id(), first.keyring.current_id());
    assert_eq!(second.keyring.key_ids(), vec![first.keyring.current_id()]);
    assert_eq!(second.keyring.open(&sealed, &aad()).map(|p| p.to_vec()), Ok(b"client secret".to_vec()));
}

#[test]
fn the_last_key_is_current_and_comments_are_ignored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let (oldest, older, current) = (MasterKey::generate(), MasterKey::generate(), MasterKey::generate());
    let text = format!(
        "# comment\n\n  {}  \n#{}\n{}\r\n\n{}",
        oldest.to_base64().as_str(),
        MasterKey::generate().to_base64().as_str(),
        older.to_base64().as_str(),
        current.to_base64().as_str(),
    );
    fs::write(&path, text).expect("write");

    let loaded = open_file(&path);
    assert!(!loaded.generated);
    assert_eq!(loaded.keyring.key_ids(), vec![current.id(), older.id(), oldest.id()]);
}

#[test]
fn a_bad_line_is_named_by_number_and_not_repeated() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let secretish = "c2l4dGVlbiBieXRlIGtleQ==";
    fs::write(&path, format!("# keys\n{}\n{secretish}\n", MasterKey::generate().to_base64().as_str())).expect("write");

    let err = load_keyring(&KeySource::File(path.clone())).expect_err("a bad line is refused");
    let message = err.to_string();
    assert!(matches!(err, CryptoError::BadKey(_)));
    assert!(message.contains(&format!("key file {}, line 3:", path.display())), "{message}");
    assert!(message.contains("decodes to 16 bytes"), "{message}");
    assert!(!message.contains(secretish), "{message}");
}

#[test]
fn a_key_file_without_keys_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    fs::write(&path, "# nothing here\n\n").expect("write");
    let err = load_keyring(&KeySource::File(path)).expect_err("refused");
    assert!(err.to_string().contains("holds no key"), "{err}");
}

#[test]
fn an_unreadable_key_file_names_its_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    fs::create_dir(&path).expect("a directory where the file should be");
    let err = load_keyring(&KeySource::File(path.clone())).expect_err("refused");
    assert!(matches!(&err, CryptoError::Io { path: p, .. } if p == &path), "{err:?}");
    assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
}

#[cfg(unix)]
#[test]
fn a_shared_key_file_is_still_used() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let key = MasterKey::generate();
    fs::write(&path, key.to_base64().as_str()).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    assert_eq!(open_file(&path).keyring.current_id(), key.id());
}

#[test]
fn the_environment_holds_one_key() {
    let key = MasterKey::generate();
    let loaded = load_keyring(&KeySource::Env(format!("{}\n", key.to_base64().as_str()))).expect("loads");
    assert_eq!(loaded.keyring.key_ids(), vec![key.id()]);
    assert_eq!(loaded.description, "LATCHKEY_MASTER_KEY");
    assert!(!loaded.generated);

    let err = load_keyring(&KeySource::Env("hunter2".to_owned())).expect_err("refused");
    let message = err.to_string();
    assert!(message.starts_with("LATCHKEY_MASTER_KEY: the master key is not valid base64"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn appending_a_key_makes_it_current_and_keeps_the_old_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let first = open_file(&path);
    let old_id = first.keyring.current_id();
    let before: Sealed = first.keyring.seal(b"sealed before", &aad());

    let new_key = MasterKey::generate();
    append_key(&path, &new_key).expect("appends");
    append_key(&path, &new_key).expect("appending the current key again changes nothing");

    let text = fs::read_to_string(&path).expect("read");
    assert!(text.starts_with(FILE_HEADER), "comments are kept");
    assert_eq!(text.matches(new_key.to_base64().as_str()).count(), 1);
    let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("list").collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");

    let reloaded = open_file(&path);
    assert_eq!(reloaded.keyring.key_ids(), vec![new_key.id(), old_id]);
    assert!(reloaded.keyring.open(&before, &aad()).is_ok());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(fs::metadata(&path).expect("metadata").permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn appending_to_a_missing_file_creates_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new").join("master.key");
    let key = MasterKey::generate();
    append_key(&path, &key).expect("creates");
    assert_eq!(open_file(&path).keyring.key_ids(), vec![key.id()]);
}

#[test]
fn appending_to_a_broken_file_leaves_it_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    fs::write(&path, "not a key\n").expect("write");
    let err = append_key(&path, &MasterKey::generate()).expect_err("refused");
    assert!(err.to_string().contains("line 1"), "{err}");
    assert_eq!(fs::read_to_string(&path).expect("read"), "not a key\n");
}

#[test]
fn debug_never_shows_a_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let loaded = open_file(&path);
    let text = fs::read_to_string(&path).expect("read");
    let key_line = text.lines().last().expect("a key line");
    assert!(!format!("{loaded:?}").contains(key_line));
    assert!(!format!("{loaded:#?}").contains(key_line));

    let source = KeySource::Env(key_line.to_owned());
    assert_eq!(format!("{source:?}"), "Env([redacted])");
    let from_env = load_keyring(&source).expect("loads");
    assert!(!format!("{from_env:?}").contains(key_line));
}

#[test]
fn the_environment_may_hold_older_keys_after_the_current_one() {
    let (current, older) = (MasterKey::generate(), MasterKey::generate());
    let text = format!("{}, {}", current.to_base64().as_str(), older.to_base64().as_str());
    let loaded = load_keyring(&KeySource::Env(text)).expect("loads");
    assert_eq!(loaded.keyring.key_ids(), vec![current.id(), older.id()]);

    let err = load_keyring(&KeySource::Env(format!("{},oops", current.to_base64().as_str()))).expect_err("bad");
    assert!(err.to_string().starts_with("LATCHKEY_MASTER_KEY, older key 1:"), "{err}");
}

#[test]
fn a_loaded_file_ring_sees_a_key_appended_later() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let running = open_file(&path).keyring;
    let old_id = running.current_id();

    let new_key = MasterKey::generate();
    append_key(&path, &new_key).expect("appends");
    assert_eq!(running.reload(), Ok(Some(new_key.id())));
    assert_eq!(running.key_ids(), vec![new_key.id(), old_id]);
    assert_eq!(running.reload(), Ok(None), "nothing new the second time");
}

#[test]
fn retiring_removes_an_older_key_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let old_id = open_file(&path).keyring.current_id();
    let new_key = MasterKey::generate();
    append_key(&path, &new_key).expect("appends");

    let err = remove_key(&path, new_key.id()).expect_err("the current key stays");
    assert!(err.to_string().contains("is the current key"), "{err}");
    let err = remove_key(&path, KeyId(7)).expect_err("unknown id");
    assert!(err.to_string().contains("holds no key with id 00000007"), "{err}");

    remove_key(&path, old_id).expect("removes");
    let text = fs::read_to_string(&path).expect("read");
    assert!(text.starts_with(FILE_HEADER), "comments are kept");
    assert_eq!(read_key_file(&path).expect("reads").key_ids(), vec![new_key.id()]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(fs::metadata(&path).expect("metadata").permissions().mode() & 0o777, 0o600);
    }
}

#[test]
fn reading_a_missing_key_file_does_not_create_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let err = read_key_file(&path).expect_err("missing");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!path.exists());
}

#[test]
fn a_bad_current_key_in_the_environment_is_named_as_such() {
    let older = MasterKey::generate();
    let err = load_keyring(&KeySource::Env(format!("oops,{}", older.to_base64().as_str()))).expect_err("bad");
    assert!(err.to_string().starts_with("LATCHKEY_MASTER_KEY, the current key:"), "{err}");
}

#[test]
fn appending_after_a_last_line_without_newline_starts_a_new_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let old = MasterKey::generate();
    fs::write(&path, old.to_base64().as_str()).expect("write");

    let new_key = MasterKey::generate();
    append_key(&path, &new_key).expect("appends");
    let text = fs::read_to_string(&path).expect("read");
    assert_eq!(text.lines().count(), 2, "one key per line");
    assert_eq!(read_key_file(&path).expect("reads").key_ids(), vec![new_key.id(), old.id()]);
}

#[test]
fn a_key_file_that_cannot_be_opened_is_not_taken_for_a_missing_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_a_dir = dir.path().join("plain-file");
    fs::write(&not_a_dir, "").expect("write");
    let path = not_a_dir.join("master.key");

    let err = read_key_file(&path).expect_err("refused");
    assert!(err.to_string().contains("cannot open the key file"), "{err}");
    let err = load_keyring(&KeySource::File(path.clone())).expect_err("refused");
    assert!(err.to_string().contains("cannot open the key file"), "{err}");
}

#[cfg(unix)]
#[test]
fn a_key_file_that_cannot_be_created_says_so() {
    // Opening `missing/` finds nothing, creating it fails with "is a directory": a failure to create that is
    // not a race with another process.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut path = dir.path().join("master.key").into_os_string();
    path.push("/");
    let path = PathBuf::from(path);

    let err = load_keyring(&KeySource::File(path.clone())).expect_err("refused");
    assert!(
        matches!(&err, CryptoError::Io { message, .. } if message.starts_with("cannot create the key file (")),
        "{err:?}"
    );
}

#[cfg(unix)]
#[test]
fn a_key_file_created_by_someone_else_meanwhile_is_read_not_overwritten() {
    // A dangling symbolic link: opening it finds nothing, creating it finds something there. This is what
    // another process creating the file between our look and our creation looks like; here the file is still
    // not readable afterwards, so the second read says so.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    std::os::unix::fs::symlink(dir.path().join("elsewhere").join("master.key"), &path).expect("symlink");

    let err = load_keyring(&KeySource::File(path.clone())).expect_err("refused");
    assert!(matches!(&err, CryptoError::Io { message, .. } if message == "disappeared while being read"), "{err:?}");
    assert!(fs::symlink_metadata(&path).expect("still there").file_type().is_symlink(), "left as it was");
}

#[cfg(unix)]
#[test]
fn a_key_file_others_may_read_is_used_with_a_warning_and_a_private_one_quietly() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("master.key");
    let key = MasterKey::generate();
    fs::write(&path, key.to_base64().as_str()).expect("write");

    for (mode, shared) in [(0o600, false), (0o400, false), (0o640, true), (0o604, true), (0o660, true)] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        let (loaded, logs) = logs_of(|| read_key_file(&path));
        assert_eq!(loaded.expect("used either way").current_id(), key.id());
        assert_eq!(logs.contains("can be read by other users"), shared, "mode {mode:o}: {logs}");
        if shared {
            assert!(logs.contains(&format!("(mode {mode:o})")), "{logs}");
        }
        assert!(!logs.contains(key.to_base64().as_str()), "the key is never logged");
    }
}

#[test]
fn every_new_or_replaced_key_file_has_its_directory_flushed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let path = data.join("master.key");
    synced_dirs();

    let old_id = open_file(&path).keyring.current_id();
    assert_eq!(synced_dirs(), vec![data.clone()], "a generated file");
    let new_key = MasterKey::generate();
    append_key(&path, &new_key).expect("appends");
    assert_eq!(synced_dirs(), vec![data.clone()], "an appended key");
    remove_key(&path, old_id).expect("removes");
    assert_eq!(synced_dirs(), vec![data.clone()], "a removed key");
    open_file(&path);
    assert_eq!(synced_dirs(), Vec::<PathBuf>::new(), "reading writes nothing");
}

#[test]
fn a_bare_file_name_lives_in_the_current_directory() {
    assert_eq!(parent_dir(Path::new("master.key")), Path::new("."));
    assert_eq!(parent_dir(Path::new("data/master.key")), Path::new("data"));
    assert_eq!(parent_dir(Path::new("/master.key")), Path::new("/"));
}
