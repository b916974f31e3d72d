//! The wire form: COSE_Sign1 (RFC 9052) with EdDSA over CWT claims (RFC 8392), and the `HC1:` text
//! form that QR alphanumeric mode carries. docs/token-format.md is the specification; this module is
//! its implementation.

use ciborium::Value;
use coset::{AsCborValue, CborSerializable, CoseSign1, Header, HeaderBuilder, Label, ProtectedHeader, iana};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use time::OffsetDateTime;

use crate::claims::{
    ClaimError, CodeClaims, Colour, HolderId, Issuer, NameHint, date_to_epoch_days, epoch_days_to_date,
};
use crate::error::VerifyError;
use crate::keys::{KeyId, Purpose};

/// The prefix of the text form; the digit is the format version.
pub const TEXT_PREFIX: &str = "HC1:";

/// The `typ` header parameter (RFC 9596).
pub const HEADER_TYP: i64 = 16;

/// CWT claim keys. 1, 4 and 6 are the registered `iss`, `exp` and `iat`; the negative keys are this
/// format's own.
pub mod claim_key {
    /// Issuer (text).
    pub const ISS: i64 = 1;
    /// Expiry (seconds since the epoch).
    pub const EXP: i64 = 4;
    /// Issued at (seconds since the epoch).
    pub const IAT: i64 = 6;
    /// Pseudonymous holder id (bytes).
    pub const SUBJECT: i64 = -1;
    /// Colour: 0 green, 1 yellow, 2 red.
    pub const COLOUR: i64 = -2;
    /// Masked name hint (text).
    pub const NAME_HINT: i64 = -3;
    /// Green-from date (days since 1970-01-01).
    pub const GREEN_FROM: i64 = -4;
}

/// A signed holder code as bytes (the untagged COSE_Sign1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl Token {
    /// Wraps bytes without checking them.
    pub fn from_bytes(bytes: Vec<u8>) -> Token {
        Token(bytes)
    }

    /// Parses the text form: `HC1:` then RFC 4648 Base32 without padding, upper case, nothing else.
    /// Leading and trailing white space (a hardware scanner's line end) is ignored.
    pub fn from_text(text: &str) -> Result<Token, VerifyError> {
        let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
        if text.is_empty() {
            return Err(VerifyError::Empty);
        }
        let Some(body) = text.strip_prefix(TEXT_PREFIX) else {
            let shown: String = text.chars().take(4).collect();
            return Err(VerifyError::UnknownPrefix { found: shown });
        };
        let bytes = data_encoding::BASE32_NOPAD.decode(body.as_bytes()).map_err(|e| {
            let position = TEXT_PREFIX.len() + e.position;
            match e.kind {
                data_encoding::DecodeKind::Symbol => VerifyError::BadCharacter {
                    position,
                    character: body[e.position..].chars().next().unwrap_or('?'),
                },
                _ => VerifyError::BadText {
                    position,
                    reason: e.kind.to_string(),
                },
            }
        })?;
        if bytes.is_empty() {
            return Err(VerifyError::Empty);
        }
        Ok(Token(bytes))
    }

    /// The text form.
    pub fn to_text(&self) -> String {
        let mut s =
            String::with_capacity(TEXT_PREFIX.len() + data_encoding::BASE32_NOPAD.encode_len(self.0.len()));
        s.push_str(TEXT_PREFIX);
        data_encoding::BASE32_NOPAD.encode_append(&self.0, &mut s);
        s
    }

    /// The COSE bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Signs objects of one purpose with one key; for holder codes it also fixes the issuer.
pub struct Signer {
    kid: KeyId,
    issuer: Issuer,
    key: SigningKey,
    protected: ProtectedHeader,
    purpose: Purpose,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// The protected header every healthcode object carries.
fn protected_header(kid: KeyId, purpose: Purpose) -> Header {
    HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(kid.0.to_vec())
        .value(HEADER_TYP, Value::Integer(purpose.typ().into()))
        .build()
}

impl Signer {
    /// A signer for `purpose` objects of `issuer`.
    pub fn new(issuer: Issuer, key: SigningKey, purpose: Purpose) -> Signer {
        let kid = KeyId::of(&key.verifying_key());
        let header = protected_header(kid, purpose);
        // Serialise the protected header once; every object reuses the same bytes.
        let original = header.clone().to_vec().ok();
        Signer {
            kid,
            issuer,
            key,
            protected: ProtectedHeader {
                original_data: original,
                header,
            },
            purpose,
        }
    }

    /// The key id.
    pub fn kid(&self) -> KeyId {
        self.kid
    }

    /// The issuer.
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs a payload as a COSE_Sign1 of this signer's purpose.
    pub fn sign_payload(&self, payload: Vec<u8>) -> Vec<u8> {
        let mut sign1 = CoseSign1 {
            protected: self.protected.clone(),
            unprotected: Header::default(),
            payload: Some(payload),
            signature: Vec::new(),
        };
        let tbs = sign1.tbs_data(&[]);
        sign1.signature = self.key.sign(&tbs).to_bytes().to_vec();
        // Serialising a structure of byte strings and an empty map cannot fail.
        sign1.to_vec().unwrap_or_default()
    }

    /// Signs a holder code.
    pub fn issue(&self, claims: &CodeClaims) -> Result<Token, ClaimError> {
        if self.purpose != Purpose::HolderCode {
            return Err(ClaimError(format!(
                "this key signs {}s, not holder codes",
                self.purpose
            )));
        }
        if claims.issuer != self.issuer {
            return Err(ClaimError(format!(
                "claims name issuer {} but this key belongs to {}",
                claims.issuer, self.issuer
            )));
        }
        claims.check()?;
        Ok(Token(self.sign_payload(encode_claims(claims))))
    }
}

/// Encodes claims as the CWT claims map, keys in a fixed order.
pub fn encode_claims(c: &CodeClaims) -> Vec<u8> {
    let mut map: Vec<(Value, Value)> = Vec::with_capacity(7);
    let int = |k: i64| Value::Integer(k.into());
    map.push((int(claim_key::ISS), Value::Text(c.issuer.as_str().to_owned())));
    map.push((
        int(claim_key::IAT),
        Value::Integer(c.issued_at.unix_timestamp().into()),
    ));
    map.push((
        int(claim_key::EXP),
        Value::Integer(c.expires_at.unix_timestamp().into()),
    ));
    map.push((
        int(claim_key::SUBJECT),
        Value::Bytes(c.subject.as_bytes().to_vec()),
    ));
    map.push((int(claim_key::COLOUR), Value::Integer(c.colour.code().into())));
    if let Some(hint) = &c.name_hint {
        map.push((int(claim_key::NAME_HINT), Value::Text(hint.as_str().to_owned())));
    }
    if let Some(date) = c.green_from {
        map.push((
            int(claim_key::GREEN_FROM),
            Value::Integer(date_to_epoch_days(date).into()),
        ));
    }
    let mut out = Vec::with_capacity(64);
    // Writing a map of integers, texts and byte strings into a Vec cannot fail.
    let _ = ciborium::into_writer(&Value::Map(map), &mut out);
    out
}

/// Decodes one CBOR data item that must fill `bytes` exactly, reporting the byte offset of a problem.
pub fn decode_item(bytes: &[u8]) -> Result<Value, VerifyError> {
    let mut rest = bytes;
    let value: Value = ciborium::from_reader(&mut rest).map_err(|e| match e {
        ciborium::de::Error::Io(_) => VerifyError::Malformed {
            offset: bytes.len(),
            reason: "the data ends in the middle of an item".into(),
        },
        ciborium::de::Error::Syntax(offset) => VerifyError::Malformed {
            offset,
            reason: "invalid CBOR".into(),
        },
        ciborium::de::Error::Semantic(offset, msg) => VerifyError::Malformed {
            offset: offset.unwrap_or(0),
            reason: msg,
        },
        ciborium::de::Error::RecursionLimitExceeded => VerifyError::Malformed {
            offset: 0,
            reason: "nested too deeply".into(),
        },
    })?;
    if !rest.is_empty() {
        return Err(VerifyError::Malformed {
            offset: bytes.len() - rest.len(),
            reason: format!("{} bytes after the end of the object", rest.len()),
        });
    }
    Ok(value)
}

/// A COSE_Sign1 whose structure has been checked but whose signature has not.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// The key id from the protected header.
    pub kid: KeyId,
    /// The purpose from the protected header.
    pub purpose: Purpose,
    sign1: CoseSign1,
}

impl Unverified {
    /// Parses and checks the envelope: an untagged array of four, a protected header with exactly
    /// `alg` EdDSA, an 8-byte `kid` and a known `typ`, an empty unprotected header, an attached
    /// payload and a 64-byte signature.
    pub fn parse(bytes: &[u8]) -> Result<Unverified, VerifyError> {
        let value = decode_item(bytes)?;
        if let Value::Tag(tag, _) = value {
            return Err(VerifyError::Malformed {
                offset: 0,
                reason: format!("tagged object (tag {tag}); the format is untagged"),
            });
        }
        let sign1 = CoseSign1::from_cbor_value(value).map_err(|e| VerifyError::Malformed {
            offset: 0,
            reason: format!("not a COSE_Sign1: {e}"),
        })?;
        let h = &sign1.protected.header;
        if h.alg
            != Some(coset::RegisteredLabelWithPrivate::Assigned(
                iana::Algorithm::EdDSA,
            ))
        {
            return Err(VerifyError::WrongAlgorithm);
        }
        let kid = KeyId::from_slice(&h.key_id).ok_or_else(|| VerifyError::Malformed {
            offset: 0,
            reason: format!("key id is {} bytes, not 8", h.key_id.len()),
        })?;
        let typ = match h.rest.as_slice() {
            [(Label::Int(HEADER_TYP), Value::Integer(t))] => i128::from(*t),
            _ => {
                return Err(VerifyError::Malformed {
                    offset: 0,
                    reason: "protected header must hold exactly alg, kid and typ".into(),
                });
            }
        };
        let purpose = Purpose::from_typ(typ).ok_or(VerifyError::UnknownPurpose { typ })?;
        if *h != protected_header(kid, purpose) {
            return Err(VerifyError::Malformed {
                offset: 0,
                reason: "protected header must hold exactly alg, kid and typ".into(),
            });
        }
        if sign1.unprotected != Header::default() {
            return Err(VerifyError::Malformed {
                offset: 0,
                reason: "unprotected header is not empty".into(),
            });
        }
        if sign1.payload.is_none() {
            return Err(VerifyError::Malformed {
                offset: 0,
                reason: "payload is detached".into(),
            });
        }
        if sign1.signature.len() != Signature::BYTE_SIZE {
            return Err(VerifyError::Malformed {
                offset: 0,
                reason: format!("signature is {} bytes, not 64", sign1.signature.len()),
            });
        }
        Ok(Unverified { kid, purpose, sign1 })
    }

    /// Checks the signature with `key` (strict Ed25519: no malleable or small-order inputs) and
    /// returns the payload.
    pub fn verify(self, key: &VerifyingKey) -> Result<Vec<u8>, VerifyError> {
        let sig_bytes: [u8; 64] = self
            .sign1
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| VerifyError::BadSignature)?;
        let sig = Signature::from_bytes(&sig_bytes);
        let tbs = self.sign1.tbs_data(&[]);
        key.verify_strict(&tbs, &sig)
            .map_err(|_| VerifyError::BadSignature)?;
        Ok(self.sign1.payload.unwrap_or_default())
    }
}

fn bad_claim(reason: impl Into<String>) -> VerifyError {
    VerifyError::BadClaims {
        reason: reason.into(),
    }
}

fn int_of(v: &Value, name: &str) -> Result<i128, VerifyError> {
    match v {
        Value::Integer(i) => Ok(i128::from(*i)),
        _ => Err(bad_claim(format!("{name} is not an integer"))),
    }
}

fn time_of(v: &Value, name: &str) -> Result<OffsetDateTime, VerifyError> {
    let secs = int_of(v, name)?;
    if secs < 0 {
        return Err(bad_claim(format!("{name} is before 1970")));
    }
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| bad_claim(format!("{name} is out of range")))
}

/// Decodes a holder code's claims: a map with exactly the known keys, each at most once, the
/// required ones present, each value of its type and range.
pub fn decode_claims(payload: &[u8]) -> Result<CodeClaims, VerifyError> {
    let Value::Map(entries) = decode_item(payload)? else {
        return Err(bad_claim("claims are not a map"));
    };
    let mut slots: [Option<&Value>; 7] = [None; 7];
    for (k, v) in &entries {
        let key = match k {
            Value::Integer(i) => i128::from(*i),
            _ => return Err(bad_claim("a claim key is not an integer")),
        };
        let slot = match i64::try_from(key) {
            Ok(claim_key::ISS) => 0,
            Ok(claim_key::IAT) => 1,
            Ok(claim_key::EXP) => 2,
            Ok(claim_key::SUBJECT) => 3,
            Ok(claim_key::COLOUR) => 4,
            Ok(claim_key::NAME_HINT) => 5,
            Ok(claim_key::GREEN_FROM) => 6,
            _ => return Err(bad_claim(format!("unknown claim {key}"))),
        };
        if slots[slot].replace(v).is_some() {
            return Err(bad_claim(format!("claim {key} appears twice")));
        }
    }
    let need = |i: usize, name: &str| slots[i].ok_or_else(|| bad_claim(format!("{name} is missing")));
    let issuer = match need(0, "issuer")? {
        Value::Text(s) => Issuer::parse(s).map_err(|e| bad_claim(e.0))?,
        _ => return Err(bad_claim("issuer is not text")),
    };
    let issued_at = time_of(need(1, "issued-at")?, "issued-at")?;
    let expires_at = time_of(need(2, "expiry")?, "expiry")?;
    let subject = match need(3, "subject")? {
        Value::Bytes(b) => HolderId::from_bytes(b).map_err(|e| bad_claim(e.0))?,
        _ => return Err(bad_claim("subject is not a byte string")),
    };
    let colour_code = int_of(need(4, "colour")?, "colour")?;
    let colour = u64::try_from(colour_code)
        .ok()
        .and_then(Colour::from_code)
        .ok_or_else(|| bad_claim(format!("colour {colour_code} is not 0, 1 or 2")))?;
    let name_hint = match slots[5] {
        None => None,
        Some(Value::Text(s)) => Some(NameHint::parse(s).map_err(|e| bad_claim(e.0))?),
        Some(_) => return Err(bad_claim("name hint is not text")),
    };
    let green_from = match slots[6] {
        None => None,
        Some(v) => {
            let days = int_of(v, "green-from")?;
            let date = i64::try_from(days)
                .ok()
                .filter(|d| *d >= 0)
                .and_then(epoch_days_to_date)
                .ok_or_else(|| bad_claim("green-from is out of range"))?;
            Some(date)
        }
    };
    let claims = CodeClaims {
        issuer,
        subject,
        issued_at,
        expires_at,
        colour,
        name_hint,
        green_from,
    };
    claims.check().map_err(|e| bad_claim(e.0))?;
    Ok(claims)
}
