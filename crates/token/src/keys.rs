//! Key ids, purposes and the public half of signing keys with their validity.

use std::fmt;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::claims::Issuer;

/// What a signed object is. Carried in the protected header as `typ` (label 16, RFC 9596) with a
/// CoAP Content-Format number from the experimental range, so one kind can never be taken for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// A holder's health code.
    HolderCode,
    /// A venue's poster code that holders scan.
    VenuePoster,
    /// A trust list of issuer keys.
    TrustList,
    /// A signed tree head of the audit log (its transparency log).
    AuditLog,
}

impl Purpose {
    /// The `typ` value in the protected header.
    pub fn typ(self) -> u16 {
        match self {
            Purpose::HolderCode => 65001,
            Purpose::VenuePoster => 65002,
            Purpose::TrustList => 65003,
            Purpose::AuditLog => 65004,
        }
    }

    /// The purpose for a `typ` value.
    pub fn from_typ(typ: i128) -> Option<Purpose> {
        match typ {
            65001 => Some(Purpose::HolderCode),
            65002 => Some(Purpose::VenuePoster),
            65003 => Some(Purpose::TrustList),
            65004 => Some(Purpose::AuditLog),
            _ => None,
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Purpose::HolderCode => "holder code",
            Purpose::VenuePoster => "venue poster",
            Purpose::TrustList => "trust list",
            Purpose::AuditLog => "audit log tree head",
        })
    }
}

/// An 8-byte key id: the first 8 bytes of SHA-256 over the 32-byte Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The id of a public key.
    pub fn of(key: &VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }

    /// Parses 16 hex digits.
    pub fn from_hex(s: &str) -> Option<KeyId> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(s.as_bytes()).ok()?;
        Some(KeyId(bytes.try_into().ok()?))
    }

    /// From the bytes in a COSE header.
    pub fn from_slice(b: &[u8]) -> Option<KeyId> {
        Some(KeyId(b.try_into().ok()?))
    }

    /// Lower-case hex, as in JWK `kid` members and file names.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.to_hex())
    }
}

/// Generates a new Ed25519 signing key from the operating system's random generator.
pub fn generate_signing_key() -> Result<SigningKey, getrandom::Error> {
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut())?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Encodes a public key as base64url without padding (the JWK `x` form), the form in which
/// verifiers are configured with the trust-list root key.
pub fn public_key_to_text(key: &VerifyingKey) -> String {
    data_encoding::BASE64URL_NOPAD.encode(key.as_bytes())
}

/// Parses a public key from base64url (padding and surrounding white space tolerated).
pub fn public_key_from_text(s: &str) -> Option<VerifyingKey> {
    let s = s.trim().trim_end_matches('=');
    let bytes = data_encoding::BASE64URL_NOPAD.decode(s.as_bytes()).ok()?;
    VerifyingKey::from_bytes(&bytes.try_into().ok()?).ok()
}

/// A public key as a trust list states it: who uses it, for what, and when it is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// The key id.
    pub kid: KeyId,
    /// The region whose codes it signs.
    pub issuer: Issuer,
    /// The public key.
    pub key: VerifyingKey,
    /// What it may sign.
    pub purposes: Vec<Purpose>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity: after this the key is retired and nothing it signed verifies.
    pub not_after: OffsetDateTime,
}
