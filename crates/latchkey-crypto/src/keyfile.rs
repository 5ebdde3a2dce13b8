//! Where the master key comes from: the `LATCHKEY_MASTER_KEY` environment variable, or a key file that
//! latchkey creates on first start.
//!
//! # Key file format
//!
//! UTF-8 text with one master key per line, each the standard base64 (RFC 4648 section 4) of 32 bytes. Blank
//! lines and lines starting with `#` are ignored. The **last** key is the current one, which seals; earlier
//! keys are older ones, kept only to open values sealed before a rotation. [`append_key`] adds a new current
//! key at the end and [`remove_key`] takes out an older key that nothing uses any more. A ring loaded from a
//! file can read it again ([`Keyring::reload`]), so a running server picks up a key that a rotation added.
//!
//! The file is created with mode `0600` (owner read and write only) and its directory, when latchkey creates
//! it, with `0700`. A key file that others may read is still used, with a warning.
//!
//! Errors name the path and the line number, never the content of a line.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zeroize::Zeroizing;

use crate::error::CryptoError;
use crate::keyring::{KeyId, Keyring, MasterKey};
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
    /// The text of `LATCHKEY_MASTER_KEY`: the base64 of one key, or, while a rotation is under way, the
    /// current key followed by older keys, comma-separated. Such a ring cannot be read again while running.
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
            // One key, or (during a rotation) the current key followed by older ones, comma-separated.
            let mut keys = Vec::new();
            for (index, part) in text.split(',').enumerate() {
                let key = MasterKey::from_base64(part).map_err(|err| {
                    let which = match index {
                        0 if !text.contains(',') => String::new(),
                        0 => ", the current key".to_owned(),
                        _ => format!(", older key {index}"),
                    };
                    CryptoError::BadKey(format!("{ENV_VAR}{which}: {}", reason(err)))
                })?;
                keys.push(key);
            }
            let current = keys.remove(0);
            Ok(LoadedKeyring {
                keyring: Keyring::new(current, keys),
                generated: false,
                description: ENV_VAR.to_owned(),
            })
        }
        KeySource::File(path) => {
            let mut loaded = load_file(path)?;
            let reload_path = path.clone();
            loaded.keyring = loaded.keyring.with_reload(Arc::new(move || read_key_file(&reload_path)));
            Ok(loaded)
        }
    }
}

/// The keys of an existing key file, the last one current. Unlike [`load_keyring`], a missing file is an
/// error, not a reason to generate a key.
///
/// # Errors
/// [`CryptoError::Io`] when the file is missing or unreadable, [`CryptoError::BadKey`] for a bad line or a
/// file without keys.
pub fn read_key_file(path: &Path) -> Result<Keyring, CryptoError> {
    let Some(text) = read_text(path)? else {
        return Err(CryptoError::Io { path: path.to_owned(), message: "the key file does not exist".to_owned() });
    };
    keyring_of(&text, path)
}

/// Removes the older key `id` from the key file at `path`, keeping every other line. A key that is no
/// longer needed to open anything can go, so that its loss or leak no longer matters. The caller checks that
/// no stored value is sealed with it; the current (last) key cannot be removed.
///
/// The file is replaced like [`append_key`] replaces it.
///
/// # Errors
/// [`CryptoError::BadKey`] when the file holds no key with that id, when it is the current key, or when a
/// line is bad; [`CryptoError::Io`] when the file cannot be read or replaced.
pub fn remove_key(path: &Path, id: KeyId) -> Result<(), CryptoError> {
    let Some(existing) = read_text(path)? else {
        return Err(CryptoError::Io { path: path.to_owned(), message: "the key file does not exist".to_owned() });
    };
    let keys = parse_keys(&existing, path)?;
    if !keys.iter().any(|key| key.id() == id) {
        return Err(CryptoError::BadKey(format!("key file {} holds no key with id {id}", path.display())));
    }
    if keys.last().is_some_and(|last| last.id() == id) {
        return Err(CryptoError::BadKey(format!(
            "key {id} is the current key of {}: it seals new values and cannot be retired; rotate first",
            path.display()
        )));
    }
    let mut contents = Zeroizing::new(String::with_capacity(existing.len()));
    for line in existing.lines() {
        let trimmed = line.trim();
        let is_retired = !trimmed.is_empty()
            && !trimmed.starts_with('#')
            && MasterKey::from_base64(trimmed).is_ok_and(|key| key.id() == id);
        if !is_retired {
            contents.push_str(line);
            contents.push('\n');
        }
    }
    replace_file(path, &contents)?;
    tracing::info!(path = %path.display(), key_id = %id, "removed the retired master key {id} from {}", path.display());
    Ok(())
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

    replace_file(path, &contents)?;
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

    Ok(LoadedKeyring { keyring: keyring_of(&text, path)?, generated, description })
}

/// The keys of a key file's text, the last one current.
fn keyring_of(text: &str, path: &Path) -> Result<Keyring, CryptoError> {
    let mut keys = parse_keys(text, path)?;
    let Some(current) = keys.pop() else {
        return Err(CryptoError::BadKey(format!(
            "key file {} holds no key: put the master key (standard base64 of 32 bytes) on a line of its own",
            path.display()
        )));
    };
    keys.reverse();
    Ok(Keyring::new(current, keys))
}

/// Replaces the file at `path` with `contents`: written to a temporary file (mode `0600`) in the same
/// directory, flushed to disk, renamed over the old file and the directory flushed, so a crash leaves either
/// the old file or the new one, never half of one.
fn replace_file(path: &Path, contents: &str) -> Result<(), CryptoError> {
    let dir = parent_dir(path);
    create_private_dir(dir)?;
    let Some(name) = path.file_name() else {
        return Err(CryptoError::Io { path: path.to_owned(), message: "is not a path to a file".to_owned() });
    };
    let temp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), random_token(6)));
    write_private_file(&temp, contents.as_bytes()).and_then(|()| fs::rename(&temp, path)).map_err(|err| {
        let _ = fs::remove_file(&temp);
        CryptoError::io(path, "cannot replace the key file", &err)
    })?;
    sync_dir(dir);
    Ok(())
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
    match File::open(dir).and_then(|handle| handle.sync_all()) {
        Ok(()) => {
            // Tests cannot see a flush on disk; they see this note of it instead.
            #[cfg(test)]
            tests::SYNCED_DIRS.with(|synced| synced.borrow_mut().push(dir.to_owned()));
        }
        Err(err) => {
            tracing::debug!(path = %dir.display(), error = %err, "could not flush the key file's directory");
        }
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
mod tests;
