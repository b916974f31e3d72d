//! The data directory: signing keys, the data-encryption key material and the SQLite database.
//! Created on first start; afterwards every part must be there.

use std::io::Write;
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
        let keystore = Keystore::open(&keys_dir).map_err(|e| fail(e.to_string()))?;
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
