//! Signing keys kept in a directory: a root key that signs trust lists, and issuer keys that sign
//! holder codes, one of them active. The only module of this crate that touches the file system.
//!
//! ```text
//! DIR/keystore.json           issuer, public keys, validity, which key is active (no secrets)
//! DIR/root.key.pem            root private key, PKCS#8 PEM, mode 0600
//! DIR/root.pub                root public key, base64url: what verifiers are configured with
//! DIR/signing-<kid>.key.pem   issuer private keys, PKCS#8 PEM, mode 0600
//! DIR/audit-log.key.pem       the key that signs the audit log's tree heads and nothing else
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use time::{Duration, OffsetDateTime};

use crate::claims::Issuer;
use crate::cose::Signer;
use crate::keys::{
    KeyId, Purpose, TrustedKey, generate_signing_key, public_key_from_text, public_key_to_text,
};
use crate::tree_head::TreeHeadSigner;
use crate::trust_list::{TrustList, TrustListError};

/// Default validity of a new issuer key.
pub const DEFAULT_KEY_VALIDITY: Duration = Duration::days(365);
/// Default time a rotated-out key keeps verifying: longer than any code it signed can live.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::days(8);
/// Default time until a trust list should be refreshed.
pub const DEFAULT_TRUST_LIST_VALIDITY: Duration = Duration::days(1);
/// Retired keys stay in exported trust lists this long, so verifiers can say "retired" rather than
/// "unknown".
pub const RETIRED_KEY_LISTING: Duration = Duration::days(30);

const MANIFEST: &str = "keystore.json";
const ROOT_KEY: &str = "root.key.pem";
const ROOT_PUB: &str = "root.pub";
const AUDIT_LOG_KEY: &str = "audit-log.key.pem";
/// How long the audit-log key is listed as valid: tree heads are checked long after they were
/// signed, so it does not expire with the issuer keys.
pub const AUDIT_LOG_KEY_VALIDITY: Duration = Duration::days(100 * 365);

/// What went wrong with a key directory.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The directory holds no keys.
    #[error("{0} holds no keys (no keystore.json): run `healthcode keys generate --dir {0}` first")]
    Missing(PathBuf),
    /// Keys exist already.
    #[error("{0} already holds keys: use `healthcode keys rotate` to add a new one")]
    Exists(PathBuf),
    /// The manifest is unreadable.
    #[error("{path} is not a valid key manifest: {reason}")]
    BadManifest {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A private key file is unreadable.
    #[error("{path} is not an Ed25519 private key in PKCS#8 PEM: {reason}")]
    BadKey {
        /// The file or variable.
        path: String,
        /// Why.
        reason: String,
    },
    /// A private key file can be read by others.
    #[error("{path} can be read by other users (mode {mode:o}): run `chmod 600 {path}`")]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// A private key does not belong to the public key it should.
    #[error("the private key from {source_name} is not key {expected}")]
    Mismatch {
        /// Where it came from.
        source_name: String,
        /// The key expected.
        expected: KeyId,
    },
    /// No key can sign now.
    #[error("no signing key is valid now: run `healthcode keys rotate --activate-after-hours 0`")]
    NoActiveKey,
    /// No such key.
    #[error("no key {0} in this key directory")]
    UnknownKey(String),
    /// The operating system's random generator failed.
    #[error("cannot get random bytes: {0}")]
    Random(String),
    /// Building the trust list failed.
    #[error(transparent)]
    TrustList(#[from] TrustListError),
}

/// The state of an issuer key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// The newest key: signs new codes from its `not_before` on (until then the key before it
    /// still signs, so verifiers can learn it from a trust list first).
    Active,
    /// Rotated out: verifies until its end date; signs only until its successor's start.
    Previous,
    /// Ended on purpose (a key that may be compromised): signs nothing.
    Retired,
}

/// An issuer key as the manifest records it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Key id (hex).
    pub kid: String,
    /// Public key (base64url).
    pub public: String,
    /// State.
    pub state: KeyState,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RootRecord {
    kid: String,
    public: String,
    #[serde(with = "time::serde::rfc3339")]
    created: OffsetDateTime,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    issuer: Issuer,
    root: RootRecord,
    keys: Vec<KeyRecord>,
    /// The audit-log key (absent in directories made before it existed; added at open by
    /// [`Keystore::ensure_audit_log_key`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    audit_log: Option<RootRecord>,
}

/// A key directory.
#[derive(Debug)]
pub struct Keystore {
    dir: PathBuf,
    manifest: Manifest,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
    move |source| KeystoreError::Io {
        path: path.to_owned(),
        source,
    }
}

fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

impl Keystore {
    /// Creates a new key directory for `issuer` with a root key and a first active issuer key.
    /// Refuses if the directory already holds keys.
    pub fn generate(
        dir: &Path,
        issuer: Issuer,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<Keystore, KeystoreError> {
        let now = whole_seconds(now);
        if dir.join(MANIFEST).exists() {
            return Err(KeystoreError::Exists(dir.to_owned()));
        }
        create_private_dir(dir)?;
        let root = generate_signing_key().map_err(|e| KeystoreError::Random(e.to_string()))?;
        let root_pub = root.verifying_key();
        write_private_key(&dir.join(ROOT_KEY), &root)?;
        let pub_path = dir.join(ROOT_PUB);
        fs::write(&pub_path, format!("{}\n", public_key_to_text(&root_pub))).map_err(io_err(&pub_path))?;
        let mut store = Keystore {
            dir: dir.to_owned(),
            manifest: Manifest {
                issuer,
                root: RootRecord {
                    kid: KeyId::of(&root_pub).to_hex(),
                    public: public_key_to_text(&root_pub),
                    created: now,
                },
                keys: Vec::new(),
                audit_log: None,
            },
        };
        store.add_key(now, validity)?;
        store.add_audit_log_key(now)?;
        store.save()?;
        Ok(store)
    }

    /// Opens an existing key directory; never creates one.
    pub fn open(dir: &Path) -> Result<Keystore, KeystoreError> {
        let path = dir.join(MANIFEST);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(KeystoreError::Missing(dir.to_owned()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|e| KeystoreError::BadManifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        for k in &manifest.keys {
            let key = public_key_from_text(&k.public).ok_or_else(|| KeystoreError::BadManifest {
                path: path.clone(),
                reason: format!("key {} has an invalid public key", k.kid),
            })?;
            if KeyId::of(&key).to_hex() != k.kid {
                return Err(KeystoreError::BadManifest {
                    path: path.clone(),
                    reason: format!("key id {} does not match its public key", k.kid),
                });
            }
        }
        if manifest
            .keys
            .iter()
            .filter(|k| k.state == KeyState::Active)
            .count()
            > 1
        {
            return Err(KeystoreError::BadManifest {
                path,
                reason: "more than one active key".into(),
            });
        }
        Ok(Keystore {
            dir: dir.to_owned(),
            manifest,
        })
    }

    /// The issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.manifest.issuer
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The issuer keys, oldest first.
    pub fn keys(&self) -> &[KeyRecord] {
        &self.manifest.keys
    }

    /// The root public key as base64url.
    pub fn root_public(&self) -> &str {
        &self.manifest.root.public
    }

    /// The path of the root public key file.
    pub fn root_public_path(&self) -> PathBuf {
        self.dir.join(ROOT_PUB)
    }

    fn add_audit_log_key(&mut self, now: OffsetDateTime) -> Result<KeyId, KeystoreError> {
        let key = generate_signing_key().map_err(|e| KeystoreError::Random(e.to_string()))?;
        let kid = KeyId::of(&key.verifying_key());
        write_private_key(&self.dir.join(AUDIT_LOG_KEY), &key)?;
        self.manifest.audit_log = Some(RootRecord {
            kid: kid.to_hex(),
            public: public_key_to_text(&key.verifying_key()),
            created: whole_seconds(now),
        });
        Ok(kid)
    }

    /// Gives a key directory made before the audit-log key existed its key; returns whether it
    /// made one. A directory with one is left as it is.
    pub fn ensure_audit_log_key(&mut self, now: OffsetDateTime) -> Result<bool, KeystoreError> {
        if self.manifest.audit_log.is_some() {
            return Ok(false);
        }
        self.add_audit_log_key(now)?;
        self.save()?;
        Ok(true)
    }

    /// The signer of the audit log's tree heads.
    pub fn audit_log_signer(&self) -> Result<TreeHeadSigner, KeystoreError> {
        let rec = self
            .manifest
            .audit_log
            .as_ref()
            .ok_or_else(|| KeystoreError::UnknownKey("audit-log".into()))?;
        let path = self.dir.join(AUDIT_LOG_KEY);
        let key = read_private_key(&path)?;
        if KeyId::of(&key.verifying_key()).to_hex() != rec.kid {
            let expected = KeyId::from_hex(&rec.kid).unwrap_or(KeyId([0; 8]));
            return Err(KeystoreError::Mismatch {
                source_name: path.display().to_string(),
                expected,
            });
        }
        Ok(TreeHeadSigner::new(key))
    }

    fn add_key(&mut self, start: OffsetDateTime, validity: Duration) -> Result<KeyId, KeystoreError> {
        let key = generate_signing_key().map_err(|e| KeystoreError::Random(e.to_string()))?;
        let kid = KeyId::of(&key.verifying_key());
        write_private_key(&self.dir.join(format!("signing-{kid}.key.pem")), &key)?;
        self.manifest.keys.push(KeyRecord {
            kid: kid.to_hex(),
            public: public_key_to_text(&key.verifying_key()),
            state: KeyState::Active,
            not_before: start,
            not_after: start + validity,
        });
        Ok(kid)
    }

    /// Makes a new key that starts signing `activate_after` from now, so that verifiers can fetch
    /// a trust list naming it first. The key it replaces signs until then, and verifies until its
    /// end date, brought forward to the new key's start plus `grace` if that is sooner.
    pub fn rotate(
        &mut self,
        now: OffsetDateTime,
        validity: Duration,
        grace: Duration,
        activate_after: Duration,
    ) -> Result<KeyId, KeystoreError> {
        let start = whole_seconds(now) + activate_after;
        for k in &mut self.manifest.keys {
            if k.state == KeyState::Active {
                k.state = KeyState::Previous;
                k.not_after = k.not_after.min(start + grace);
            }
        }
        let kid = self.add_key(start, validity)?;
        self.save()?;
        Ok(kid)
    }

    /// Ends a key's validity now (a compromised key): codes it signed stop verifying as soon as
    /// verifiers have the next trust list.
    pub fn retire(&mut self, kid: &str, now: OffsetDateTime) -> Result<(), KeystoreError> {
        let now = whole_seconds(now);
        let rec = self
            .manifest
            .keys
            .iter_mut()
            .find(|k| k.kid == kid.to_ascii_lowercase())
            .ok_or_else(|| KeystoreError::UnknownKey(kid.to_owned()))?;
        rec.state = KeyState::Retired;
        rec.not_after = rec.not_after.min(now).max(rec.not_before);
        self.save()
    }

    /// The key that signs at `now`: of the keys not retired and valid at `now`, the one that
    /// started last.
    pub fn signing_key(&self, now: OffsetDateTime) -> Result<&KeyRecord, KeystoreError> {
        self.manifest
            .keys
            .iter()
            .filter(|k| k.state != KeyState::Retired && k.not_before <= now && now < k.not_after)
            .max_by_key(|k| k.not_before)
            .ok_or(KeystoreError::NoActiveKey)
    }

    /// The signer for holder codes: the [signing key](Self::signing_key), its private half taken from `secret` when given
    /// (a secret from the environment, with its name for errors) or else from its file in the
    /// directory.
    pub fn active_signer(
        &self,
        now: OffsetDateTime,
        secret: Option<(String, SigningKey)>,
    ) -> Result<Signer, KeystoreError> {
        let rec = self.signing_key(now)?;
        let kid = KeyId::from_hex(&rec.kid).ok_or_else(|| KeystoreError::UnknownKey(rec.kid.clone()))?;
        let (key, source_name) = match secret {
            Some((name, key)) => (key, name),
            None => {
                let path = self.dir.join(format!("signing-{kid}.key.pem"));
                (read_private_key(&path)?, path.display().to_string())
            }
        };
        if KeyId::of(&key.verifying_key()) != kid {
            return Err(KeystoreError::Mismatch {
                source_name,
                expected: kid,
            });
        }
        Ok(Signer::new(
            self.manifest.issuer.clone(),
            key,
            Purpose::HolderCode,
        ))
    }

    /// The root signer for trust lists.
    pub fn root_signer(&self) -> Result<Signer, KeystoreError> {
        let path = self.dir.join(ROOT_KEY);
        let key = read_private_key(&path)?;
        if KeyId::of(&key.verifying_key()).to_hex() != self.manifest.root.kid {
            let expected = KeyId::from_hex(&self.manifest.root.kid).unwrap_or(KeyId([0; 8]));
            return Err(KeystoreError::Mismatch {
                source_name: path.display().to_string(),
                expected,
            });
        }
        Ok(Signer::new(self.manifest.issuer.clone(), key, Purpose::TrustList))
    }

    /// The keys a trust list exported at `now` carries: all but those retired for longer than
    /// [`RETIRED_KEY_LISTING`].
    pub fn trusted_keys(&self, now: OffsetDateTime) -> Vec<TrustedKey> {
        self.manifest
            .keys
            .iter()
            .filter(|k| k.not_after + RETIRED_KEY_LISTING > now)
            .filter_map(|k| {
                Some(TrustedKey {
                    kid: KeyId::from_hex(&k.kid)?,
                    issuer: self.manifest.issuer.clone(),
                    key: public_key_from_text(&k.public)?,
                    purposes: vec![Purpose::HolderCode],
                    not_before: k.not_before,
                    not_after: k.not_after,
                })
            })
            .chain(self.manifest.audit_log.as_ref().and_then(|a| {
                Some(TrustedKey {
                    kid: KeyId::from_hex(&a.kid)?,
                    issuer: self.manifest.issuer.clone(),
                    key: public_key_from_text(&a.public)?,
                    purposes: vec![Purpose::AuditLog],
                    not_before: a.created,
                    not_after: a.created + AUDIT_LOG_KEY_VALIDITY,
                })
            }))
            .collect()
    }

    /// Signs a trust list of this directory's keys.
    pub fn export_trust_list(
        &self,
        now: OffsetDateTime,
        validity: Duration,
    ) -> Result<String, KeystoreError> {
        let now = whole_seconds(now);
        let root = self.root_signer()?;
        Ok(TrustList::sign(
            &root,
            &self.trusted_keys(now),
            now,
            now + validity,
        )?)
    }

    fn save(&self) -> Result<(), KeystoreError> {
        let path = self.dir.join(MANIFEST);
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        let json = serde_json::to_string_pretty(&self.manifest).map_err(|e| KeystoreError::BadManifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(json.as_bytes()).map_err(io_err(&tmp))?;
        f.write_all(b"\n").map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
        fs::rename(&tmp, &path).map_err(io_err(&path))?;
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> Result<(), KeystoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(io_err(dir))
}

fn write_private_key(path: &Path, key: &SigningKey) -> Result<(), KeystoreError> {
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeystoreError::BadKey {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(pem.as_bytes()).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Reads a private key file, refusing one that other users can read.
pub fn read_private_key(path: &Path) -> Result<SigningKey, KeystoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(io_err(path))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeystoreError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let pem = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(io_err(path))?);
    parse_private_key(&pem, &path.display().to_string())
}

/// Parses a PKCS#8 PEM private key; `name` says where it came from in errors.
pub fn parse_private_key(pem: &str, name: &str) -> Result<SigningKey, KeystoreError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| KeystoreError::BadKey {
        path: name.to_owned(),
        reason: e.to_string(),
    })
}
