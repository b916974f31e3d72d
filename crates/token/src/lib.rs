//! The signed health code.
//!
//! A holder code is a COSE_Sign1 (RFC 9052) signed with Ed25519 over CWT claims (RFC 8392), shown as
//! `HC1:` followed by Base32 so that a QR code carries it in alphanumeric mode. Scanners verify it
//! offline against a trust list of issuer keys, itself signed by a root key.
//!
//! Everything here is pure computation except [`keystore`], which keeps keys in a directory.
//! docs/token-format.md specifies the format.

pub mod claims;
pub mod cose;
pub mod error;
pub mod keys;
pub mod keystore;
pub mod tree_head;
pub mod trust_list;
pub mod verify;

pub use claims::{ClaimError, CodeClaims, Colour, HolderId, Issuer, NameHint};
pub use cose::{Signer, TEXT_PREFIX, Token};
pub use error::VerifyError;
pub use keys::{KeyId, Purpose, TrustedKey};
pub use tree_head::{SignedTreeHead, TreeHead, TreeHeadError, TreeHeadSigner};
pub use trust_list::{TrustList, TrustListError};
pub use verify::{DEFAULT_LEEWAY, VerifiedCode, Verifier};
