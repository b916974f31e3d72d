//! What can be wrong with a code or a trust list, each reason its own variant.

use time::OffsetDateTime;

use crate::claims::Issuer;
use crate::keys::{KeyId, Purpose};

fn when(t: &OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Why a code (or a trust list) was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Nothing to verify.
    #[error("the code is empty")]
    Empty,
    /// The text does not start with `HC1:`.
    #[error("not a health code: it starts with {found:?}, not \"HC1:\"")]
    UnknownPrefix {
        /// The first characters found.
        found: String,
    },
    /// A character outside the Base32 alphabet.
    #[error("malformed at character {position}: {character:?} is not allowed in a code")]
    BadCharacter {
        /// Zero-based position in the text, prefix included.
        position: usize,
        /// The character.
        character: char,
    },
    /// The Base32 text is cut or padded wrongly.
    #[error("malformed at character {position}: {reason}")]
    BadText {
        /// Zero-based position in the text, prefix included.
        position: usize,
        /// What was wrong.
        reason: String,
    },
    /// The bytes are not the expected CBOR structure.
    #[error("malformed at byte {offset}: {reason}")]
    Malformed {
        /// Offset in the decoded bytes (0 when the problem is the structure as a whole).
        offset: usize,
        /// What was wrong.
        reason: String,
    },
    /// The algorithm is not EdDSA.
    #[error("the signature algorithm is not EdDSA")]
    WrongAlgorithm,
    /// The `typ` header names no known kind of object.
    #[error("unknown object type {typ}")]
    UnknownPurpose {
        /// The value found.
        typ: i128,
    },
    /// The object is of another kind than expected.
    #[error("wrong purpose: this is a {found}, not a {expected}")]
    WrongPurpose {
        /// What it is.
        found: Purpose,
        /// What was expected.
        expected: Purpose,
    },
    /// The key is trusted but not for this kind of object.
    #[error("key {kid} may not sign a {purpose}")]
    KeyNotForPurpose {
        /// The key id.
        kid: KeyId,
        /// The object's purpose.
        purpose: Purpose,
    },
    /// The key id is not in the trust list.
    #[error("unknown key {kid}: not in the trust list")]
    UnknownKey {
        /// The key id.
        kid: KeyId,
    },
    /// The key's validity ended.
    #[error("retired key {kid}: its validity ended {}", when(.not_after))]
    RetiredKey {
        /// The key id.
        kid: KeyId,
        /// The end of its validity.
        not_after: OffsetDateTime,
    },
    /// The key's validity has not begun.
    #[error("key {kid} is not valid until {}", when(.not_before))]
    KeyNotYetValid {
        /// The key id.
        kid: KeyId,
        /// The start of its validity.
        not_before: OffsetDateTime,
    },
    /// The signature does not match.
    #[error("bad signature: the code was altered or forged")]
    BadSignature,
    /// The claims are not well formed.
    #[error("malformed claims: {reason}")]
    BadClaims {
        /// What was wrong.
        reason: String,
    },
    /// The code names another issuer than the key's.
    #[error("wrong issuer: the code says {claimed} but key {kid} belongs to {key_issuer}")]
    WrongIssuer {
        /// Issuer in the claims.
        claimed: Issuer,
        /// Issuer of the key.
        key_issuer: Issuer,
        /// The key id.
        kid: KeyId,
    },
    /// The issuer is not one this verifier accepts.
    #[error("untrusted issuer {issuer}")]
    UntrustedIssuer {
        /// The issuer.
        issuer: Issuer,
    },
    /// The code has expired.
    #[error("expired at {}", when(.expired_at))]
    Expired {
        /// The code's expiry.
        expired_at: OffsetDateTime,
    },
    /// The code was issued after the verifier's clock (beyond the leeway).
    #[error("not yet valid: issued at {}, later than this device's clock", when(.issued_at))]
    NotYetValid {
        /// The code's issue time.
        issued_at: OffsetDateTime,
    },
    /// The key signed outside its validity period.
    #[error("key {kid} was not valid when the code was issued")]
    IssuedOutsideKeyValidity {
        /// The key id.
        kid: KeyId,
    },
}

impl VerifyError {
    /// A stable, short name for the kind of failure, used in test vectors and API error types.
    pub fn kind(&self) -> &'static str {
        match self {
            VerifyError::Empty => "empty",
            VerifyError::UnknownPrefix { .. } => "unknown-prefix",
            VerifyError::BadCharacter { .. } => "bad-character",
            VerifyError::BadText { .. } => "bad-text",
            VerifyError::Malformed { .. } => "malformed",
            VerifyError::WrongAlgorithm => "wrong-algorithm",
            VerifyError::UnknownPurpose { .. } => "unknown-purpose",
            VerifyError::WrongPurpose { .. } => "wrong-purpose",
            VerifyError::KeyNotForPurpose { .. } => "key-not-for-purpose",
            VerifyError::UnknownKey { .. } => "unknown-key",
            VerifyError::RetiredKey { .. } => "retired-key",
            VerifyError::KeyNotYetValid { .. } => "key-not-yet-valid",
            VerifyError::BadSignature => "bad-signature",
            VerifyError::BadClaims { .. } => "bad-claims",
            VerifyError::WrongIssuer { .. } => "wrong-issuer",
            VerifyError::UntrustedIssuer { .. } => "untrusted-issuer",
            VerifyError::Expired { .. } => "expired",
            VerifyError::NotYetValid { .. } => "not-yet-valid",
            VerifyError::IssuedOutsideKeyValidity { .. } => "issued-outside-key-validity",
        }
    }
}
