//! The trust list: an issuer's public keys as JWKs (RFC 8037), with validity and purposes, signed by
//! a root key whose public half verifiers are configured with.

use std::collections::BTreeMap;

use ed25519_dalek::VerifyingKey;
use time::{Duration, OffsetDateTime};

use crate::claims::Issuer;
use crate::cose::{Signer, Unverified};
use crate::error::VerifyError;
use crate::keys::{KeyId, Purpose, TrustedKey, public_key_from_text, public_key_to_text};

/// The prefix of a trust list's text form.
pub const TRUST_LIST_PREFIX: &str = "HCTL1:";

/// Why a trust list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustListError {
    /// Not the text form.
    #[error("not a trust list: it does not start with \"{TRUST_LIST_PREFIX}\"")]
    NotATrustList,
    /// The base64url text is broken.
    #[error("malformed trust list at character {0}")]
    BadText(usize),
    /// The envelope or signature is wrong.
    #[error("trust list rejected: {0}")]
    Envelope(#[from] VerifyError),
    /// Signed by another key than the configured root.
    #[error("trust list is signed by key {found}, not by the configured root key {expected}")]
    WrongRoot {
        /// The signer's key id.
        found: KeyId,
        /// The root key's id.
        expected: KeyId,
    },
    /// The signed body is not a valid list.
    #[error("trust list content is invalid: {0}")]
    BadBody(String),
    /// An older list than the one already held.
    #[error("trust list issued {offered} is older than the copy held, issued {held}")]
    Rollback {
        /// Issue time of the offered list (seconds since the epoch).
        offered: i64,
        /// Issue time of the held list.
        held: i64,
    },
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    version: u32,
    issued_at: i64,
    next_update: i64,
    keys: Vec<Jwk>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Jwk {
    kty: String,
    crv: String,
    kid: String,
    x: String,
    alg: String,
    #[serde(rename = "use")]
    use_: String,
    iss: Issuer,
    purposes: Vec<Purpose>,
    nbf: i64,
    exp: i64,
}

/// A trust list whose signature has been checked against the root key.
#[derive(Debug, Clone)]
pub struct TrustList {
    issued_at: OffsetDateTime,
    next_update: OffsetDateTime,
    keys: BTreeMap<KeyId, TrustedKey>,
    text: String,
}

fn ts(secs: i64) -> Result<OffsetDateTime, TrustListError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|_| TrustListError::BadBody(format!("time {secs} out of range")))
}

impl TrustList {
    /// Signs a list of keys with the root signer (whose purpose must be [`Purpose::TrustList`]) and
    /// returns the text form.
    pub fn sign(
        root: &Signer,
        keys: &[TrustedKey],
        issued_at: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Result<String, TrustListError> {
        let body = Body {
            version: 1,
            issued_at: issued_at.unix_timestamp(),
            next_update: next_update.unix_timestamp(),
            keys: keys
                .iter()
                .map(|k| Jwk {
                    kty: "OKP".into(),
                    crv: "Ed25519".into(),
                    kid: k.kid.to_hex(),
                    x: public_key_to_text(&k.key),
                    alg: "EdDSA".into(),
                    use_: "sig".into(),
                    iss: k.issuer.clone(),
                    purposes: k.purposes.clone(),
                    nbf: k.not_before.unix_timestamp(),
                    exp: k.not_after.unix_timestamp(),
                })
                .collect(),
        };
        let json = serde_json::to_vec(&body).map_err(|e| TrustListError::BadBody(e.to_string()))?;
        let bytes = root.sign_payload(&json);
        Ok(format!(
            "{TRUST_LIST_PREFIX}{}",
            data_encoding::BASE64URL_NOPAD.encode(&bytes)
        ))
    }

    /// Parses the text form and checks it was signed by `root`.
    pub fn from_text(text: &str, root: &VerifyingKey) -> Result<TrustList, TrustListError> {
        let text = text.trim();
        let b64 = text
            .strip_prefix(TRUST_LIST_PREFIX)
            .ok_or(TrustListError::NotATrustList)?;
        let bytes = data_encoding::BASE64URL_NOPAD
            .decode(b64.as_bytes())
            .map_err(|e| TrustListError::BadText(TRUST_LIST_PREFIX.len() + e.position))?;
        let envelope = Unverified::parse(&bytes)?;
        if envelope.purpose != Purpose::TrustList {
            return Err(VerifyError::WrongPurpose {
                found: envelope.purpose,
                expected: Purpose::TrustList,
            }
            .into());
        }
        let root_kid = KeyId::of(root);
        if envelope.kid != root_kid {
            return Err(TrustListError::WrongRoot {
                found: envelope.kid,
                expected: root_kid,
            });
        }
        let payload = envelope.verify(root)?;
        let body: Body =
            serde_json::from_slice(payload).map_err(|e| TrustListError::BadBody(e.to_string()))?;
        if body.version != 1 {
            return Err(TrustListError::BadBody(format!(
                "unsupported version {}",
                body.version
            )));
        }
        let mut keys = BTreeMap::new();
        for jwk in body.keys {
            if jwk.kty != "OKP" || jwk.crv != "Ed25519" || jwk.alg != "EdDSA" || jwk.use_ != "sig" {
                return Err(TrustListError::BadBody(format!(
                    "key {} is not an Ed25519 signing key",
                    jwk.kid
                )));
            }
            let key = public_key_from_text(&jwk.x)
                .ok_or_else(|| TrustListError::BadBody(format!("key {} has an invalid x", jwk.kid)))?;
            let kid = KeyId::of(&key);
            if jwk.kid != kid.to_hex() {
                return Err(TrustListError::BadBody(format!(
                    "kid {} does not match its key",
                    jwk.kid
                )));
            }
            let entry = TrustedKey {
                kid,
                issuer: jwk.iss,
                key,
                purposes: jwk.purposes,
                not_before: ts(jwk.nbf)?,
                not_after: ts(jwk.exp)?,
            };
            if entry.not_after < entry.not_before {
                return Err(TrustListError::BadBody(format!(
                    "key {kid} ends before it begins"
                )));
            }
            if keys.insert(kid, entry).is_some() {
                return Err(TrustListError::BadBody(format!("key {kid} is listed twice")));
            }
        }
        if body.next_update < body.issued_at {
            return Err(TrustListError::BadBody("next_update is before issued_at".into()));
        }
        Ok(TrustList {
            issued_at: ts(body.issued_at)?,
            next_update: ts(body.next_update)?,
            keys,
            text: text.to_owned(),
        })
    }

    /// Replaces this copy with a newer one, refusing to go back to an older list.
    pub fn update(&mut self, newer: TrustList) -> Result<(), TrustListError> {
        if newer.issued_at < self.issued_at {
            return Err(TrustListError::Rollback {
                offered: newer.issued_at.unix_timestamp(),
                held: self.issued_at.unix_timestamp(),
            });
        }
        *self = newer;
        Ok(())
    }

    /// A key by id.
    pub fn key(&self, kid: &KeyId) -> Option<&TrustedKey> {
        self.keys.get(kid)
    }

    /// All keys.
    pub fn keys(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.values()
    }

    /// When the list was signed.
    pub fn issued_at(&self) -> OffsetDateTime {
        self.issued_at
    }

    /// When a fresher list should be fetched.
    pub fn next_update(&self) -> OffsetDateTime {
        self.next_update
    }

    /// How old this copy is at `now`.
    pub fn age(&self, now: OffsetDateTime) -> Duration {
        now - self.issued_at
    }

    /// Whether `now` is past the list's next-update time, so a verifier should say its copy is stale.
    pub fn is_stale(&self, now: OffsetDateTime) -> bool {
        now > self.next_update
    }

    /// The signed text, for caching and serving as it was received.
    pub fn as_text(&self) -> &str {
        &self.text
    }
}

/// Describes a duration for people: "3 min", "2 h 5 min", "4 d 1 h".
pub fn describe_duration(d: Duration) -> String {
    let s = d.whole_seconds().unsigned_abs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}
