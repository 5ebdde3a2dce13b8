//! Where the master key comes from: the `LATCHKEY_MASTER_KEY` environment variable, or a key file that
//! latchkey creates on first start.
//!
//! # Key file format
//!
//! UTF-8 text with one master key per line, each the standard base64 (RFC 4648 section 4) of 32 bytes. Blank
//! lines and lines starting with `#` are ignored. The **last** key is the current one, which seals; earlier
//! keys are older ones, kept only to open values sealed before a rotation. [`append_key`] adds a new current
//! key at the end.
//!
//! The file is created with mode `0600` (owner read and write only) and its directory, when latchkey creates
//! it, with `0700`. A key file that others may read is still used, with a warning.
//!
//! Errors name the path and the line number, never the content of a line.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::CryptoError;
use crate::keyring::{Keyring, MasterKey};
use crate::tokens::random_token;

/// The environment variable that holds the master key as base64.
pub const ENV_VAR: &str = "LATCHKEY_MASTER_KEY";

/// The comment at the top of a generated key file.
const FILE_HEADER: &str = "\
# latchkey master key file. Back it up and keep it private: without it the stored secrets cannot be opened.
# One base64 key per line. The last key seals; earlier keys only open values sealed before a rotation.
";

/// Where to load the master key from. `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// The base64 text of one key, as read from `LATCHKEY_MASTER_KEY`. It becomes the only key of the ring.
    Env(String),
    /// A key file; created with a fresh key when it does not exist.
    File(PathBuf),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(_) => f.write_str("Env([redacted])"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
        }
    }
}

/// A key ring and where it came from.
#[derive(Debug)]
pub struct LoadedKeyring {
    /// The keys.
    pub keyring: Keyring,
    /// Whether a new key file was just created. The server then has nothing sealed yet and should tell the
    /// operator to back the file up.
    pub generated: bool,
    /// Where the keys came from, fit for a log line: `key file latchkey-data/master.key` or
    /// `LATCHKEY_MASTER_KEY`. Never the key.
    pub description: String,
}

/// Loads the key ring from `source`. A key file that does not exist is created with a newly generated key
/// (and a warning in the log that names the path and asks for a backup).
///
/// # Errors
/// [`CryptoError::BadKey`] for a key that is not base64 of 32 bytes (naming the path and line), or a key
/// file without keys; [`CryptoError::Io`] when the file or its directory cannot be read or written.
pub fn load_keyring(source: &KeySource) -> Result<LoadedKeyring, CryptoError> {
    match source {
        KeySource::Env(text) => {
            let key = MasterKey::from_base64(text)
                .map_err(|err| CryptoError::BadKey(format!("{ENV_VAR}: {}", reason(err))))?;
            Ok(LoadedKeyring {
                keyring: Keyring::new(key, Vec::new()),
                generated: false,
                description: ENV_VAR.to_owned(),
            })
        }
        KeySource::File(path) => load_file(path),
    }
}

/// Adds `key` as the new current key at the end of the key file at `path`; the keys already in the file stay
/// as older keys, and its comments are kept. Used by key rotation. Adding the key that is already current
/// changes nothing, so a rotation can be retried.
///
/// The new content is written to a temporary file (mode `0600`) in the same directory, flushed to disk and
/// renamed over the old file, so a crash leaves either the old file or the new one, never half of one.
///
/// # Errors
/// [`CryptoError::BadKey`] when the existing file has a bad line (it is left alone);
/// [`CryptoError::Io`] when it cannot be read or replaced.
pub fn append_key(path: &Path, key: &MasterKey) -> Result<(), CryptoError> {
    let existing = match read_text(path)? {
        Some(text) => text,
        None => Zeroizing::new(String::new()),
    };
    let keys = parse_keys(&existing, path)?;
    if keys.last().is_some_and(|last| last.same_key(key)) {
        return Ok(());
    }

    let mut contents = Zeroizing::new(String::with_capacity(existing.len() + FILE_HEADER.len() + 64));
    if existing.trim().is_empty() {
        contents.push_str(FILE_HEADER);
    } else {
        contents.push_str(&existing);
        if !existing.ends_with('\n') {
            contents.push('\n');
        }
    }
    contents.push_str(&key.to_base64());
    contents.push('\n');

    let dir = parent_dir(path);
    create_private_dir(dir)?;
    let Some(name) = path.file_name() else {
        return Err(CryptoError::Io { path: path.to_owned(), message: "is not a path to a file".to_owned() });
    };
    let temp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), random_token(6)));
    let written =
        write_private_file(&temp, contents.as_bytes()).and_then(|()| fs::rename(&temp, path)).map_err(|err| {
            let _ = fs::remove_file(&temp);
            CryptoError::io(path, "cannot replace the key file", &err)
        });
    written?;
    sync_dir(dir);
    tracing::info!(
        path = %path.display(),
        key_id = %key.id(),
        "added master key {} to {} as the current key; older keys remain there to open older values",
        key.id(),
        path.display(),
    );
    Ok(())
}

fn load_file(path: &Path) -> Result<LoadedKeyring, CryptoError> {
    let description = format!("key file {}", path.display());
    let mut generated = false;
    let text = match read_text(path)? {
        Some(text) => text,
        None => {
            create_private_dir(parent_dir(path))?;
            let key = MasterKey::generate();
            match create_key_file(path, &key) {
                Ok(()) => {
                    generated = true;
                    tracing::warn!(
                        path = %path.display(),
                        key_id = %key.id(),
                        "generated a new master key in {}: back this file up and keep it private, without it \
                         the stored secrets cannot be opened",
                        path.display(),
                    );
                    return Ok(LoadedKeyring { keyring: Keyring::new(key, Vec::new()), generated, description });
                }
                // Another process created the file first: use its key.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => read_text(path)?.ok_or_else(|| {
                    CryptoError::Io { path: path.to_owned(), message: "disappeared while being read".to_owned() }
                })?,
                Err(err) => return Err(CryptoError::io(path, "cannot create the key file", &err)),
            }
        }
    };

    let mut keys = parse_keys(&text, path)?;
    let Some(current) = keys.pop() else {
        return Err(CryptoError::BadKey(format!(
            "key file {} holds no key: put the master key (standard base64 of 32 bytes) on a line of its own",
            path.display()
        )));
    };
    keys.reverse();
    Ok(LoadedKeyring { keyring: Keyring::new(current, keys), generated, description })
}

/// The keys of a key file in file order; empty when it has none.
fn parse_keys(text: &str, path: &Path) -> Result<Vec<MasterKey>, CryptoError> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = MasterKey::from_base64(line).map_err(|err| {
            CryptoError::BadKey(format!("key file {}, line {}: {}", path.display(), index + 1, reason(err)))
        })?;
        keys.push(key);
    }
    Ok(keys)
}

/// The text of the file at `path`, or `None` when it does not exist. Warns when others may read it.
fn read_text(path: &Path) -> Result<Option<Zeroizing<String>>, CryptoError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(CryptoError::io(path, "cannot open the key file", &err)),
    };
    let metadata = file.metadata().map_err(|err| CryptoError::io(path, "cannot read the key file", &err))?;
    warn_if_shared(path, &metadata);
    // Room for the whole file up front, so reading never reallocates and leaves an unwiped copy behind.
    let capacity = usize::try_from(metadata.len()).unwrap_or(0).saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    file.read_to_end(&mut bytes).map_err(|err| CryptoError::io(path, "cannot read the key file", &err))?;
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Some(Zeroizing::new(text))),
        Err(err) => {
            drop(Zeroizing::new(err.into_bytes()));
            Err(CryptoError::BadKey(format!(
                "key file {} is not UTF-8 text: it must hold one base64 key per line",
                path.display()
            )))
        }
    }
}

/// Creates a new key file holding `key` (its directory must exist); fails with
/// [`io::ErrorKind::AlreadyExists`] if there is one.
fn create_key_file(path: &Path, key: &MasterKey) -> io::Result<()> {
    let mut contents = Zeroizing::new(String::from(FILE_HEADER));
    contents.push_str(&key.to_base64());
    contents.push('\n');
    write_private_file(path, contents.as_bytes())?;
    sync_dir(parent_dir(path));
    Ok(())
}

/// Creates `path` (it must not exist) with mode `0600` from the start, writes `contents` and flushes it to
/// disk. A file left half written is removed.
fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let written = file.write_all(contents).and_then(|()| file.sync_all());
    if written.is_err() {
        drop(file);
        let _ = fs::remove_file(path);
    }
    written
}

/// The directory that holds `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Creates `dir` and its missing parents; the ones created get mode `0700`.
fn create_private_dir(dir: &Path) -> Result<(), CryptoError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|err| CryptoError::io(dir, "cannot create the key file's directory", &err))
}

/// Flushes a directory entry (a created or renamed file) to disk. Best effort: the file itself was already
/// flushed, and not every platform can open a directory.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(err) = File::open(dir).and_then(|handle| handle.sync_all()) {
        tracing::debug!(path = %dir.display(), error = %err, "could not flush the key file's directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(unix)]
fn warn_if_shared(path: &Path, metadata: &fs::Metadata) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = %format_args!("{mode:o}"),
            "the key file {} can be read by other users (mode {mode:o}): restrict it with `chmod 600`",
            path.display(),
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_path: &Path, _metadata: &fs::Metadata) {}

/// The sentence inside a key error, to be prefixed with where the key came from.
fn reason(err: CryptoError) -> String {
    match err {
        CryptoError::BadKey(message) => message,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use latchkey_core::Sealed;

    use super::*;
    use crate::keyring::Aad;

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
        fs::write(&path, format!("# keys\n{}\n{secretish}\n", MasterKey::generate().to_base64().as_str()))
            .expect("write");

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
}
