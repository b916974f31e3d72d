//! Signed tree heads of the audit log (docs/governance.md, "Transparency log").
//!
//! A tree head states the size of the audit log's Merkle tree (RFC 9162 §2.1), its root hash and
//! when it was signed. It is signed with Ed25519 by the audit-log key, whose purpose in the trust
//! list is [`Purpose::AuditLog`] and nothing else, over these bytes:
//!
//! ```text
//! "healthcode tree head v1\n" ‖ timestamp (u64, ms since 1970, big-endian)
//!                             ‖ tree_size (u64, big-endian) ‖ root_hash (32 bytes)
//! ```
//!
//! The JSON form (served at `/api/v1/transparency/head`) carries the same values with the hashes
//! and the signature in base64 and the key id in hex.

use ed25519_dalek::{Signature, Signer as _, SigningKey};
use time::OffsetDateTime;

use crate::keys::{KeyId, Purpose};
use crate::trust_list::TrustList;

/// The text every signed tree head starts with, so that the signature means nothing else.
pub const TREE_HEAD_CONTEXT: &[u8] = b"healthcode tree head v1\n";

/// What a tree head states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of leaves (audit records).
    pub tree_size: u64,
    /// The Merkle tree hash of those leaves.
    pub root_hash: [u8; 32],
    /// When it was signed, in milliseconds since 1970.
    pub timestamp: u64,
}

impl TreeHead {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(TREE_HEAD_CONTEXT.len() + 48);
        b.extend_from_slice(TREE_HEAD_CONTEXT);
        b.extend_from_slice(&self.timestamp.to_be_bytes());
        b.extend_from_slice(&self.tree_size.to_be_bytes());
        b.extend_from_slice(&self.root_hash);
        b
    }
}

/// A tree head with its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// What it states.
    pub head: TreeHead,
    /// The key that signed it.
    pub key_id: KeyId,
    /// Ed25519 over [`TreeHead::signed_bytes`].
    pub signature: [u8; 64],
}

/// Signs tree heads with the audit-log key.
pub struct TreeHeadSigner {
    key: SigningKey,
    kid: KeyId,
}

impl std::fmt::Debug for TreeHeadSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeHeadSigner").field("kid", &self.kid).finish()
    }
}

impl TreeHeadSigner {
    /// A signer with this key.
    pub fn new(key: SigningKey) -> TreeHeadSigner {
        let kid = KeyId::of(&key.verifying_key());
        TreeHeadSigner { key, kid }
    }

    /// The key id.
    pub fn kid(&self) -> KeyId {
        self.kid
    }

    /// Signs a head.
    pub fn sign(&self, head: TreeHead) -> SignedTreeHead {
        SignedTreeHead {
            head,
            key_id: self.kid,
            signature: self.key.sign(&head.signed_bytes()).to_bytes(),
        }
    }
}

/// Why a tree head was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeHeadError {
    /// The trust list names no such key.
    #[error("tree head signed by key {0}, which the trust list does not name")]
    UnknownKey(KeyId),
    /// The key is listed, for other purposes.
    #[error("key {0} may not sign audit-log tree heads")]
    NotForAuditLog(KeyId),
    /// The head's time is outside the key's validity.
    #[error("tree head time is outside the validity of key {0}")]
    OutsideValidity(KeyId),
    /// The signature does not verify.
    #[error("the tree head's signature does not verify")]
    BadSignature,
}

impl SignedTreeHead {
    /// Checks the signature with the audit-log key the trust list names.
    pub fn verify(&self, trust: &TrustList) -> Result<(), TreeHeadError> {
        let key = trust
            .key(&self.key_id)
            .ok_or(TreeHeadError::UnknownKey(self.key_id))?;
        if !key.purposes.contains(&Purpose::AuditLog) {
            return Err(TreeHeadError::NotForAuditLog(self.key_id));
        }
        let at = i128::from(self.head.timestamp) * 1_000_000;
        let valid = OffsetDateTime::from_unix_timestamp_nanos(at)
            .is_ok_and(|t| key.not_before <= t && t <= key.not_after);
        if !valid {
            return Err(TreeHeadError::OutsideValidity(self.key_id));
        }
        key.key
            .verify_strict(&self.head.signed_bytes(), &Signature::from_bytes(&self.signature))
            .map_err(|_| TreeHeadError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Issuer;
    use crate::cose::Signer;
    use crate::keys::{TrustedKey, generate_signing_key};
    use time::Duration;

    fn list(keys: &[(&SigningKey, Purpose)]) -> TrustList {
        let root = generate_signing_key().unwrap();
        let issuer = Issuer::parse("CN-SH").unwrap();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let trusted: Vec<TrustedKey> = keys
            .iter()
            .map(|(k, p)| TrustedKey {
                kid: KeyId::of(&k.verifying_key()),
                issuer: issuer.clone(),
                key: k.verifying_key(),
                purposes: vec![*p],
                not_before: now - Duration::days(1),
                not_after: now + Duration::days(1),
            })
            .collect();
        let signer = Signer::new(issuer, root.clone(), Purpose::TrustList);
        let text = TrustList::sign(&signer, &trusted, now, now + Duration::days(1)).unwrap();
        TrustList::from_text(&text, &root.verifying_key()).unwrap()
    }

    fn head() -> TreeHead {
        TreeHead {
            tree_size: 7,
            root_hash: [9; 32],
            timestamp: u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap() * 1000,
        }
    }

    #[test]
    fn a_head_verifies_only_untouched_and_with_the_audit_log_key() {
        let audit = generate_signing_key().unwrap();
        let issuer_key = generate_signing_key().unwrap();
        let trust = list(&[(&audit, Purpose::AuditLog), (&issuer_key, Purpose::HolderCode)]);
        let signed = TreeHeadSigner::new(audit.clone()).sign(head());
        assert_eq!(signed.verify(&trust), Ok(()));

        let mut bigger = signed.clone();
        bigger.head.tree_size += 1;
        assert_eq!(bigger.verify(&trust), Err(TreeHeadError::BadSignature));
        let mut other_root = signed.clone();
        other_root.head.root_hash[0] ^= 1;
        assert_eq!(other_root.verify(&trust), Err(TreeHeadError::BadSignature));
        let mut flipped = signed.clone();
        flipped.signature[5] ^= 0x10;
        assert_eq!(flipped.verify(&trust), Err(TreeHeadError::BadSignature));

        // A holder-code key cannot sign heads, and a key the list does not name is unknown.
        let by_issuer = TreeHeadSigner::new(issuer_key.clone()).sign(head());
        assert!(matches!(
            by_issuer.verify(&trust),
            Err(TreeHeadError::NotForAuditLog(_))
        ));
        let stranger = TreeHeadSigner::new(generate_signing_key().unwrap()).sign(head());
        assert!(matches!(
            stranger.verify(&trust),
            Err(TreeHeadError::UnknownKey(_))
        ));

        // A head dated long after the key's end is refused.
        let late = TreeHeadSigner::new(audit).sign(TreeHead {
            timestamp: head().timestamp + 10 * 86_400_000,
            ..head()
        });
        assert!(matches!(
            late.verify(&trust),
            Err(TreeHeadError::OutsideValidity(_))
        ));
    }

    #[test]
    fn a_key_directory_made_before_the_audit_log_key_gains_it() {
        use crate::keystore::Keystore;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let now = OffsetDateTime::now_utc();
        Keystore::generate(&keys, Issuer::parse("CN-SH").unwrap(), Duration::days(30), now).unwrap();
        // As a directory made by an older release: no audit-log key in the manifest or on disk.
        let manifest = keys.join("keystore.json");
        let mut json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
        assert!(json.as_object_mut().unwrap().remove("audit_log").is_some());
        std::fs::write(&manifest, json.to_string()).unwrap();
        std::fs::remove_file(keys.join("audit-log.key.pem")).unwrap();

        let mut store = Keystore::open(&keys).unwrap();
        assert!(store.audit_log_signer().is_err());
        assert!(
            store
                .trusted_keys(now)
                .iter()
                .all(|k| k.purposes == vec![Purpose::HolderCode])
        );
        assert!(store.ensure_audit_log_key(now).unwrap());
        assert!(!store.ensure_audit_log_key(now).unwrap(), "made once");
        let reopened = Keystore::open(&keys).unwrap();
        let signer = reopened.audit_log_signer().unwrap();
        let listed: Vec<_> = reopened
            .trusted_keys(now)
            .into_iter()
            .filter(|k| k.purposes.contains(&Purpose::AuditLog))
            .collect();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].kid, signer.kid());
        let root = crate::keys::public_key_from_text(reopened.root_public()).unwrap();
        let list = TrustList::from_text(
            &reopened.export_trust_list(now, Duration::days(1)).unwrap(),
            &root,
        )
        .unwrap();
        assert_eq!(signer.sign(head()).verify(&list), Ok(()));
    }
}
