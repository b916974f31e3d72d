//! The data directory: signing keys, the data-encryption key material and the SQLite database.
//! Created on first start; afterwards every part must be there.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use healthcode_store::{Crypto, KeyMaterial};
use healthcode_token::Issuer;
use healthcode_token::keystore::{DEFAULT_KEY_VALIDITY, Keystore};
use time::OffsetDateTime;

/// Environment variable holding the data-encryption key material instead of its file.
pub const DATA_KEYS_ENV: &str = "HEALTHCODE_DATA_KEYS";
/// Environment variable naming a file that holds it.
pub const DATA_KEYS_FILE_ENV: &str = "HEALTHCODE_DATA_KEYS_FILE";

const DATA_KEYS: &str = "data-keys.txt";
/// The file whose lock says a process has the directory open; it holds that process's id.
pub const LOCK_FILE: &str = "healthcode.lock";

/// An opened data directory.
#[derive(Debug)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// Signing keys.
    pub keystore: Keystore,
    /// Personal-data keys.
    pub crypto: Crypto,
    /// Whether this start created it.
    pub created: bool,
    /// This process's hold on the directory.
    pub lock: DirLock,
}

/// This process's hold on a data directory: an exclusive lock on [`LOCK_FILE`], which names the
/// process. While it lives, another `serve` (or a command that writes, such as `purge` or `admin
/// create`) on the same directory is refused with one line naming the holder, instead of both
/// running and failing on each other's locks. The operating system lets go when the process ends,
/// however it ends.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

impl DirLock {
    /// Takes the directory at `dir` (which must exist), or says which process has it.
    pub fn acquire(dir: &Path) -> Result<DirLock, DataDirError> {
        let fail = |reason: String| DataDirError {
            path: dir.to_owned(),
            reason,
        };
        let path = dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| fail(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process"
                } else {
                    holder
                };
                return Err(fail(format!(
                    "in use by {holder} (a healthcode server or command); stop it first or use another directory"
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(fail(format!("cannot lock {}: {e}", path.display())));
            }
        }
        let me = format!("process {}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(me.as_bytes()))
            .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
        Ok(DirLock { _file: file })
    }
}

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("data directory {path}: {reason}")]
pub struct DataDirError {
    /// The directory.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

impl DataDir {
    /// The SQLite database file of the data directory at `dir`.
    pub fn database_in(dir: &Path) -> PathBuf {
        dir.join("healthcode.db")
    }

    /// Opens the directory, or creates it when it does not exist at all.
    pub fn open_or_create(path: &Path, region: &str, now: OffsetDateTime) -> Result<DataDir, DataDirError> {
        let fail = |reason: String| DataDirError {
            path: path.to_owned(),
            reason,
        };
        let keys_dir = path.join("keys");
        let created = !path.exists();
        if created {
            let issuer = Issuer::parse(region).map_err(|e| fail(e.to_string()))?;
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(path).map_err(|e| fail(e.to_string()))?;
            Keystore::generate(&keys_dir, issuer, DEFAULT_KEY_VALIDITY, now)
                .map_err(|e| fail(e.to_string()))?;
            if std::env::var_os(DATA_KEYS_ENV).is_none() && std::env::var_os(DATA_KEYS_FILE_ENV).is_none() {
                let (_, material) = Crypto::generate().map_err(|e| fail(e.to_string()))?;
                write_secret(&path.join(DATA_KEYS), &material.to_text()).map_err(fail)?;
            }
        }
        let lock = DirLock::acquire(path)?;
        let mut keystore = Keystore::open(&keys_dir).map_err(|e| fail(e.to_string()))?;
        // Directories made before the audit log had a key of its own gain one here.
        keystore
            .ensure_audit_log_key(now)
            .map_err(|e| fail(e.to_string()))?;
        let text = match (std::env::var(DATA_KEYS_ENV), std::env::var(DATA_KEYS_FILE_ENV)) {
            (Ok(t), _) => t,
            (_, Ok(file)) => std::fs::read_to_string(&file).map_err(|e| fail(format!("{file}: {e}")))?,
            _ => std::fs::read_to_string(path.join(DATA_KEYS)).map_err(|e| {
                fail(format!("cannot read {DATA_KEYS} ({e}); give the key material in {DATA_KEYS_ENV} or {DATA_KEYS_FILE_ENV}"))
            })?,
        };
        let crypto = KeyMaterial::from_text(&text)
            .and_then(|m| m.crypto())
            .map_err(|e| fail(e.to_string()))?;
        Ok(DataDir {
            path: path.to_owned(),
            keystore,
            crypto,
            created,
            lock,
        })
    }
}

pub(crate) fn write_secret(path: &Path, text: &str) -> Result<(), String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.sync_all().map_err(|e| format!("{}: {e}", path.display()))
}
