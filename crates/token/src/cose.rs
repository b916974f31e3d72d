//! The wire form: COSE_Sign1 (RFC 9052) with EdDSA over CWT claims (RFC 8392), and the `HC1:` text
//! form that QR alphanumeric mode carries. docs/token-format.md is the specification; this module is
//! its implementation.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use minicbor::data::Type;
use minicbor::{Decoder, Encoder};
use time::OffsetDateTime;

use crate::claims::{
    ClaimError, CodeClaims, Colour, HolderId, Issuer, NameHint, date_to_epoch_days, epoch_days_to_date,
};
use crate::error::VerifyError;
use crate::keys::{KeyId, Purpose};

/// The prefix of the text form; the digit is the format version.
pub const TEXT_PREFIX: &str = "HC1:";

/// The `alg` header parameter.
pub const HEADER_ALG: i64 = 1;
/// The `kid` header parameter.
pub const HEADER_KID: i64 = 4;
/// The `typ` header parameter (RFC 9596).
pub const HEADER_TYP: i64 = 16;
/// EdDSA in the COSE algorithms registry.
pub const ALG_EDDSA: i64 = -8;

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
    protected: Vec<u8>,
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

/// The protected header every healthcode object carries: `{1: -8, 4: kid, 16: typ}`.
fn protected_header(kid: KeyId, purpose: Purpose) -> Vec<u8> {
    let mut e = Encoder::new(Vec::with_capacity(20));
    // Encoding into a Vec cannot fail.
    let _ = e
        .map(3)
        .and_then(|e| e.i64(HEADER_ALG))
        .and_then(|e| e.i64(ALG_EDDSA))
        .and_then(|e| e.i64(HEADER_KID))
        .and_then(|e| e.bytes(&kid.0))
        .and_then(|e| e.i64(HEADER_TYP))
        .and_then(|e| e.u16(purpose.typ()));
    e.into_writer()
}

/// The COSE `Sig_structure` for a COSE_Sign1 without external data:
/// `["Signature1", protected, h'', payload]`.
fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::with_capacity(protected.len() + payload.len() + 20));
    let _ = e
        .array(4)
        .and_then(|e| e.str("Signature1"))
        .and_then(|e| e.bytes(protected))
        .and_then(|e| e.bytes(&[]))
        .and_then(|e| e.bytes(payload));
    e.into_writer()
}

impl Signer {
    /// A signer for `purpose` objects of `issuer`.
    pub fn new(issuer: Issuer, key: SigningKey, purpose: Purpose) -> Signer {
        let kid = KeyId::of(&key.verifying_key());
        // The protected header is the same for every object: serialise it once.
        let protected = protected_header(kid, purpose);
        Signer {
            kid,
            issuer,
            key,
            protected,
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

    /// Signs a payload as an untagged COSE_Sign1 of this signer's purpose.
    pub fn sign_payload(&self, payload: &[u8]) -> Vec<u8> {
        let signature = self.key.sign(&sig_structure(&self.protected, payload));
        let mut e = Encoder::new(Vec::with_capacity(self.protected.len() + payload.len() + 72));
        let _ = e
            .array(4)
            .and_then(|e| e.bytes(&self.protected))
            .and_then(|e| e.map(0))
            .and_then(|e| e.bytes(payload))
            .and_then(|e| e.bytes(&signature.to_bytes()));
        e.into_writer()
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
        Ok(Token(self.sign_payload(&encode_claims(claims))))
    }
}

/// Encodes claims as the CWT claims map, keys in a fixed order.
pub fn encode_claims(c: &CodeClaims) -> Vec<u8> {
    let entries = 5 + u64::from(c.name_hint.is_some()) + u64::from(c.green_from.is_some());
    let mut e = Encoder::new(Vec::with_capacity(64));
    let mut r = e
        .map(entries)
        .and_then(|e| e.i64(claim_key::ISS))
        .and_then(|e| e.str(c.issuer.as_str()))
        .and_then(|e| e.i64(claim_key::IAT))
        .and_then(|e| e.i64(c.issued_at.unix_timestamp()))
        .and_then(|e| e.i64(claim_key::EXP))
        .and_then(|e| e.i64(c.expires_at.unix_timestamp()))
        .and_then(|e| e.i64(claim_key::SUBJECT))
        .and_then(|e| e.bytes(c.subject.as_bytes()))
        .and_then(|e| e.i64(claim_key::COLOUR))
        .and_then(|e| e.u8(c.colour.code()))
        .map(|_| ());
    if let Some(hint) = &c.name_hint {
        r = r
            .and_then(|_| e.i64(claim_key::NAME_HINT))
            .and_then(|e| e.str(hint.as_str()))
            .map(|_| ());
    }
    if let Some(date) = c.green_from {
        r = r
            .and_then(|_| e.i64(claim_key::GREEN_FROM))
            .and_then(|e| e.i64(date_to_epoch_days(date)))
            .map(|_| ());
    }
    // Encoding into a Vec cannot fail.
    let _ = r;
    e.into_writer()
}

fn malformed(offset: usize, reason: impl Into<String>) -> VerifyError {
    VerifyError::Malformed {
        offset,
        reason: reason.into(),
    }
}

/// Maps a CBOR decoding error to [`VerifyError::Malformed`] at its byte offset (plus `base`, the
/// offset of the decoded slice within the whole object).
/// An input that ends too soon is reported at its end (`base + len`).
fn cbor_err(base: usize, fallback: usize, len: usize) -> impl Fn(minicbor::decode::Error) -> VerifyError {
    move |e| {
        if e.is_end_of_input() {
            malformed(base + len, "the data ends in the middle of an item")
        } else {
            malformed(base + e.position().unwrap_or(fallback), e.to_string())
        }
    }
}

/// Length of a CBOR byte-string header for `len` bytes in its shortest form.
fn bstr_header_len(len: usize) -> usize {
    match len {
        0..24 => 1,
        24..256 => 2,
        256..65_536 => 3,
        _ => 5,
    }
}

/// A COSE_Sign1 whose structure has been checked but whose signature has not.
#[derive(Debug, Clone)]
pub struct Unverified<'a> {
    /// The key id from the protected header.
    pub kid: KeyId,
    /// The purpose from the protected header.
    pub purpose: Purpose,
    protected: &'a [u8],
    payload: &'a [u8],
    signature: Signature,
}

impl<'a> Unverified<'a> {
    /// Parses and checks the envelope: an untagged array of four, a protected header with exactly
    /// `alg` EdDSA, an 8-byte `kid` and a known `typ`, an empty unprotected header, an attached
    /// payload and a 64-byte signature, every length in its shortest form, nothing after it.
    pub fn parse(bytes: &'a [u8]) -> Result<Unverified<'a>, VerifyError> {
        let mut d = Decoder::new(bytes);
        let err = |d: &Decoder<'_>| cbor_err(0, d.position(), bytes.len());
        match d.datatype().map_err(err(&d))? {
            Type::Array => {}
            Type::Tag => return Err(malformed(0, "tagged object; the format is untagged")),
            other => {
                return Err(malformed(
                    0,
                    format!("expected a COSE_Sign1 array, found {other}"),
                ));
            }
        }
        if d.array().map_err(err(&d))? != Some(4) {
            return Err(malformed(0, "a COSE_Sign1 is a definite array of four items"));
        }
        let protected = d.bytes().map_err(err(&d))?;
        let protected_at = d.position() - protected.len();
        let at = d.position();
        if d.datatype().map_err(err(&d))? != Type::Map || d.map().map_err(err(&d))? != Some(0) {
            return Err(malformed(at, "unprotected header is not an empty map"));
        }
        let at = d.position();
        let payload = match d.datatype().map_err(err(&d))? {
            Type::Bytes => d.bytes().map_err(err(&d))?,
            Type::Null => return Err(malformed(at, "payload is detached")),
            other => return Err(malformed(at, format!("payload is {other}, not a byte string"))),
        };
        let at = d.position();
        let sig = d.bytes().map_err(err(&d))?;
        let signature: [u8; 64] = sig
            .try_into()
            .map_err(|_| malformed(at, format!("signature is {} bytes, not 64", sig.len())))?;
        if d.position() != bytes.len() {
            return Err(malformed(
                d.position(),
                format!("{} bytes after the end of the object", bytes.len() - d.position()),
            ));
        }
        let shortest = 1
            + bstr_header_len(protected.len())
            + protected.len()
            + 1
            + bstr_header_len(payload.len())
            + payload.len()
            + 2
            + 64;
        if bytes.len() != shortest {
            return Err(malformed(0, "a length is not in its shortest form"));
        }
        let (kid, purpose) = parse_protected(protected, protected_at)?;
        Ok(Unverified {
            kid,
            purpose,
            protected,
            payload,
            signature: Signature::from_bytes(&signature),
        })
    }

    /// The bytes the signature covers: the COSE `Sig_structure`.
    pub fn to_be_signed(&self) -> Vec<u8> {
        sig_structure(self.protected, self.payload)
    }

    /// Checks the signature with `key` (strict Ed25519: no malleable or small-order inputs) and
    /// returns the payload.
    pub fn verify(&self, key: &VerifyingKey) -> Result<&'a [u8], VerifyError> {
        key.verify_strict(&sig_structure(self.protected, self.payload), &self.signature)
            .map_err(|_| VerifyError::BadSignature)?;
        Ok(self.payload)
    }
}

/// Reads the protected header: exactly `alg`, `kid` and `typ`, each once, in any order.
fn parse_protected(bytes: &[u8], base: usize) -> Result<(KeyId, Purpose), VerifyError> {
    let exactly = "protected header must hold exactly alg, kid and typ";
    let mut d = Decoder::new(bytes);
    let err = |d: &Decoder<'_>| cbor_err(base, d.position(), bytes.len());
    if d.datatype().map_err(err(&d))? != Type::Map || d.map().map_err(err(&d))? != Some(3) {
        return Err(malformed(base, exactly));
    }
    let (mut alg, mut kid, mut typ) = (None, None, None);
    for _ in 0..3 {
        let at = base + d.position();
        let label = match d.datatype().map_err(err(&d))? {
            Type::U8 | Type::U16 | Type::U32 | Type::U64 | Type::I8 | Type::I16 | Type::I32 | Type::I64 => {
                d.i64().map_err(err(&d))?
            }
            _ => return Err(malformed(at, exactly)),
        };
        let at = base + d.position();
        let fresh = match label {
            HEADER_ALG => alg
                .replace(d.i64().map_err(|_| VerifyError::WrongAlgorithm)?)
                .is_none(),
            HEADER_KID => {
                let k = d.bytes().map_err(err(&d))?;
                let k = KeyId::from_slice(k)
                    .ok_or_else(|| malformed(at, format!("key id is {} bytes, not 8", k.len())))?;
                kid.replace(k).is_none()
            }
            HEADER_TYP => typ
                .replace(d.i64().map_err(|_| malformed(at, "typ is not an integer"))?)
                .is_none(),
            _ => return Err(malformed(at, exactly)),
        };
        if !fresh {
            return Err(malformed(at, format!("header {label} appears twice")));
        }
    }
    if d.position() != bytes.len() {
        return Err(malformed(
            base + d.position(),
            "bytes after the protected header map",
        ));
    }
    if alg != Some(ALG_EDDSA) {
        return Err(VerifyError::WrongAlgorithm);
    }
    let (Some(kid), Some(typ)) = (kid, typ) else {
        return Err(malformed(base, exactly));
    };
    let purpose =
        Purpose::from_typ(i128::from(typ)).ok_or(VerifyError::UnknownPurpose { typ: i128::from(typ) })?;
    Ok((kid, purpose))
}

fn bad_claim(reason: impl Into<String>) -> VerifyError {
    VerifyError::BadClaims {
        reason: reason.into(),
    }
}

fn is_int(t: Type) -> bool {
    matches!(
        t,
        Type::U8
            | Type::U16
            | Type::U32
            | Type::U64
            | Type::I8
            | Type::I16
            | Type::I32
            | Type::I64
            | Type::Int
    )
}

fn uint(d: &mut Decoder<'_>, name: &str) -> Result<u64, VerifyError> {
    match d.datatype().map_err(|e| bad_claim(e.to_string()))? {
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => d.u64().map_err(|e| bad_claim(e.to_string())),
        t if is_int(t) => Err(bad_claim(format!("{name} is negative"))),
        _ => Err(bad_claim(format!("{name} is not an integer"))),
    }
}

fn time_claim(d: &mut Decoder<'_>, name: &str) -> Result<OffsetDateTime, VerifyError> {
    let secs = uint(d, name)?;
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| bad_claim(format!("{name} is out of range")))
}

fn text_claim<'b>(d: &mut Decoder<'b>, name: &str) -> Result<&'b str, VerifyError> {
    match d.datatype().map_err(|e| bad_claim(e.to_string()))? {
        Type::String => d.str().map_err(|e| bad_claim(format!("{name}: {e}"))),
        _ => Err(bad_claim(format!("{name} is not text"))),
    }
}

/// Decodes a holder code's claims: a map with exactly the known keys, each at most once, the
/// required ones present, each value of its type and range.
pub fn decode_claims(payload: &[u8]) -> Result<CodeClaims, VerifyError> {
    let mut d = Decoder::new(payload);
    let n = match d.datatype().map_err(|e| bad_claim(e.to_string()))? {
        Type::Map => d.map().map_err(|e| bad_claim(e.to_string()))?,
        _ => None,
    };
    let Some(n) = n.filter(|n| *n <= 7) else {
        return Err(bad_claim("claims are not a definite map of at most 7 entries"));
    };
    let mut issuer = None;
    let mut issued_at = None;
    let mut expires_at = None;
    let mut subject = None;
    let mut colour = None;
    let mut name_hint = None;
    let mut green_from = None;
    for _ in 0..n {
        if !is_int(d.datatype().map_err(|e| bad_claim(e.to_string()))?) {
            return Err(bad_claim("a claim key is not an integer"));
        }
        let key = d.i64().map_err(|_| bad_claim("a claim key is out of range"))?;
        let fresh = match key {
            claim_key::ISS => {
                let s = text_claim(&mut d, "issuer")?;
                issuer
                    .replace(Issuer::parse(s).map_err(|e| bad_claim(e.0))?)
                    .is_none()
            }
            claim_key::IAT => issued_at.replace(time_claim(&mut d, "issued-at")?).is_none(),
            claim_key::EXP => expires_at.replace(time_claim(&mut d, "expiry")?).is_none(),
            claim_key::SUBJECT => {
                let b = match d.datatype().map_err(|e| bad_claim(e.to_string()))? {
                    Type::Bytes => d.bytes().map_err(|e| bad_claim(e.to_string()))?,
                    _ => return Err(bad_claim("subject is not a byte string")),
                };
                subject
                    .replace(HolderId::from_bytes(b).map_err(|e| bad_claim(e.0))?)
                    .is_none()
            }
            claim_key::COLOUR => {
                let code = uint(&mut d, "colour")?;
                let c = Colour::from_code(code)
                    .ok_or_else(|| bad_claim(format!("colour {code} is not 0, 1 or 2")))?;
                colour.replace(c).is_none()
            }
            claim_key::NAME_HINT => {
                let s = text_claim(&mut d, "name hint")?;
                name_hint
                    .replace(NameHint::parse(s).map_err(|e| bad_claim(e.0))?)
                    .is_none()
            }
            claim_key::GREEN_FROM => {
                let days = uint(&mut d, "green-from")?;
                let date = i64::try_from(days)
                    .ok()
                    .and_then(epoch_days_to_date)
                    .ok_or_else(|| bad_claim("green-from is out of range"))?;
                green_from.replace(date).is_none()
            }
            other => return Err(bad_claim(format!("unknown claim {other}"))),
        };
        if !fresh {
            return Err(bad_claim(format!("claim {key} appears twice")));
        }
    }
    if d.position() != payload.len() {
        return Err(bad_claim(format!(
            "{} bytes after the claims",
            payload.len() - d.position()
        )));
    }
    let missing = |name: &str| bad_claim(format!("{name} is missing"));
    let claims = CodeClaims {
        issuer: issuer.ok_or_else(|| missing("issuer"))?,
        subject: subject.ok_or_else(|| missing("subject"))?,
        issued_at: issued_at.ok_or_else(|| missing("issued-at"))?,
        expires_at: expires_at.ok_or_else(|| missing("expiry"))?,
        colour: colour.ok_or_else(|| missing("colour"))?,
        name_hint,
        green_from,
    };
    claims.check().map_err(|e| bad_claim(e.0))?;
    Ok(claims)
}
