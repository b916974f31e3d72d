//! Personal data at rest: sealed with XChaCha20-Poly1305 under a data key whose id is stored with
//! each value (so keys can rotate), and looked up by HMAC-SHA256 keyed hashes so uniqueness and
//! login work without decrypting.

use std::collections::BTreeMap;
use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use healthcode_domain::{IdentityDocument, IdentityError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// What went wrong with sealed data or keys.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CryptoError {
    /// The value names a key this server does not have.
    #[error("sealed with data key {0}, which is not configured")]
    UnknownKey(u32),
    /// The value was altered, or belongs to another record.
    #[error("sealed value failed authentication")]
    Tampered,
    /// The value is too short to be sealed data.
    #[error("sealed value is truncated")]
    Truncated,
    /// A key is malformed.
    #[error("bad key material: {0}")]
    BadKey(String),
    /// The operating system's random generator failed.
    #[error("cannot get random bytes")]
    Random(#[source] getrandom::Error),
    /// Personal data could not be encoded for sealing.
    #[error("cannot encode personal data")]
    Encode(#[source] std::sync::Arc<serde_json::Error>),
    /// A holder's personal data does not name the identity document of their kind (a resident's
    /// ID number, a visitor's passport and nationality), so it has no lookup key.
    #[error("the personal data of a {kind} does not name a valid identity document")]
    NoDocument {
        /// The holder's kind.
        kind: &'static str,
        /// Why the document was refused, when one was given.
        #[source]
        source: Option<IdentityError>,
    },
}

const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 4 + NONCE_LEN;

/// The keys for personal data: data keys by id (one current, older ones for reading), and the key
/// for keyed hashes.
pub struct Crypto {
    current: u32,
    keys: BTreeMap<u32, XChaCha20Poly1305>,
    hmac_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypto")
            .field("current_key", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(CryptoError::Random)?;
    Ok(b)
}

impl Crypto {
    /// Builds from data keys (id, 32 bytes), the id of the current one, and the hash key.
    pub fn new(
        data_keys: &[(u32, [u8; 32])],
        current: u32,
        hmac_key: [u8; 32],
    ) -> Result<Crypto, CryptoError> {
        let keys: BTreeMap<u32, XChaCha20Poly1305> = data_keys
            .iter()
            .map(|(id, k)| (*id, XChaCha20Poly1305::new(k.into())))
            .collect();
        if !keys.contains_key(&current) {
            return Err(CryptoError::BadKey(format!(
                "current data key {current} is not among the keys"
            )));
        }
        Ok(Crypto {
            current,
            keys,
            hmac_key: Zeroizing::new(hmac_key),
        })
    }

    /// Fresh random keys (data key 1 and a hash key), as `serve` makes on first start.
    pub fn generate() -> Result<(Crypto, KeyMaterial), CryptoError> {
        let material = KeyMaterial {
            data_keys: vec![(1, random()?)],
            current: 1,
            hmac_key: random()?,
        };
        Ok((material.crypto()?, material))
    }

    /// The id of the key new values are sealed with.
    pub fn current_key(&self) -> u32 {
        self.current
    }

    /// Seals `plaintext`, bound to `aad` (the record's id): `key id (4 bytes, big-endian) ‖
    /// nonce (24) ‖ ciphertext and tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = self
            .keys
            .get(&self.current)
            .ok_or(CryptoError::UnknownKey(self.current))?;
        let nonce: [u8; NONCE_LEN] = random()?;
        let ct = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plaintext, aad })
            .map_err(|_| CryptoError::BadKey("encryption failed".into()))?;
        let mut out = Vec::with_capacity(HEADER_LEN + ct.len());
        out.extend_from_slice(&self.current.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a sealed value with the key it names.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < HEADER_LEN + 16 {
            return Err(CryptoError::Truncated);
        }
        let key_id = u32::from_be_bytes([sealed[0], sealed[1], sealed[2], sealed[3]]);
        let cipher = self.keys.get(&key_id).ok_or(CryptoError::UnknownKey(key_id))?;
        let nonce = XNonce::from_slice(&sealed[4..HEADER_LEN]);
        cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered)
    }

    /// The keyed hash of a value in a domain ("resident-id", "passport", "phone", …), so equal
    /// values can be found without storing them.
    pub fn keyed_hash(&self, domain: &str, value: &str) -> [u8; 32] {
        // HMAC accepts keys of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.hmac_key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// The hash domain and the text hashed for an identity document: `"resident-id"` and the
/// number, or `"passport"` and `NATIONALITY:NUMBER`, both as their types normalise them. Sealing a
/// holder and looking one up use this one key, so the same document always finds its holder.
pub fn identity_key(doc: &IdentityDocument) -> (&'static str, String) {
    match doc {
        IdentityDocument::ResidentId(number) => ("resident-id", number.as_str().to_owned()),
        IdentityDocument::Passport { nationality, number } => (
            "passport",
            format!("{}:{}", nationality.as_str(), number.as_str()),
        ),
    }
}

impl Crypto {
    /// The keyed hash a holder registered with `doc` is stored under (see [`identity_key`]).
    pub fn identity_hash(&self, doc: &IdentityDocument) -> [u8; 32] {
        let (domain, text) = identity_key(doc);
        self.keyed_hash(domain, &text)
    }
}

/// Key material as it is kept in a secret file: hex, one key a line.
pub struct KeyMaterial {
    /// Data keys by id.
    pub data_keys: Vec<(u32, [u8; 32])>,
    /// The current data key.
    pub current: u32,
    /// The keyed-hash key.
    pub hmac_key: [u8; 32],
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KeyMaterial(current {}, {} data keys)",
            self.current,
            self.data_keys.len()
        )
    }
}

impl KeyMaterial {
    /// The crypto for this material.
    pub fn crypto(&self) -> Result<Crypto, CryptoError> {
        Crypto::new(&self.data_keys, self.current, self.hmac_key)
    }

    /// The file form:
    /// ```text
    /// hmac <64 hex>
    /// data <id> <64 hex>        (one line a key)
    /// current <id>
    /// ```
    pub fn to_text(&self) -> Zeroizing<String> {
        let hex = |b: &[u8]| data_encoding::HEXLOWER.encode(b);
        let mut s = format!("hmac {}\n", hex(&self.hmac_key));
        for (id, k) in &self.data_keys {
            s.push_str(&format!("data {id} {}\n", hex(k)));
        }
        s.push_str(&format!("current {}\n", self.current));
        Zeroizing::new(s)
    }

    /// Parses the file form.
    pub fn from_text(text: &str) -> Result<KeyMaterial, CryptoError> {
        let key = |h: &str| -> Result<[u8; 32], CryptoError> {
            data_encoding::HEXLOWER_PERMISSIVE
                .decode(h.as_bytes())
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| CryptoError::BadKey("a key is not 64 hex digits".into()))
        };
        let (mut hmac_key, mut current, mut data_keys) = (None, None, Vec::new());
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let bad = || {
                CryptoError::BadKey(format!(
                    "line {} is not `hmac HEX`, `data ID HEX` or `current ID`",
                    n + 1
                ))
            };
            let twice = |what: &str| CryptoError::BadKey(format!("line {}: {what} is given twice", n + 1));
            match parts.as_slice() {
                ["hmac", h] => {
                    if hmac_key.replace(key(h)?).is_some() {
                        return Err(twice("the hmac key"));
                    }
                }
                ["data", id, h] => {
                    let id: u32 = id.parse().map_err(|_| bad())?;
                    if data_keys.iter().any(|(i, _)| *i == id) {
                        return Err(twice(&format!("data key {id}")));
                    }
                    data_keys.push((id, key(h)?));
                }
                ["current", id] => {
                    if current.replace(id.parse().map_err(|_| bad())?).is_some() {
                        return Err(twice("current"));
                    }
                }
                _ => return Err(bad()),
            }
        }
        Ok(KeyMaterial {
            hmac_key: hmac_key.ok_or_else(|| CryptoError::BadKey("no hmac key".into()))?,
            current: current.ok_or_else(|| CryptoError::BadKey("no current data key".into()))?,
            data_keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_rotate_and_tamper() {
        let old = Crypto::new(&[(1, [1; 32])], 1, [9; 32]).unwrap();
        let sealed = old.seal(b"holder-1", b"Zhang San").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"Zhang"));
        assert_eq!(&old.open(b"holder-1", &sealed).unwrap()[..], b"Zhang San");
        // Bound to its record.
        assert!(matches!(
            old.open(b"holder-2", &sealed),
            Err(CryptoError::Tampered)
        ));
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(old.open(b"holder-1", &bad), Err(CryptoError::Tampered)));
        // After rotation new values use key 2 and old ones still open.
        let new = Crypto::new(&[(1, [1; 32]), (2, [2; 32])], 2, [9; 32]).unwrap();
        assert_eq!(&new.open(b"holder-1", &sealed).unwrap()[..], b"Zhang San");
        assert_eq!(&new.seal(b"x", b"y").unwrap()[..4], &2u32.to_be_bytes());
        let only_new = Crypto::new(&[(2, [2; 32])], 2, [9; 32]).unwrap();
        assert!(matches!(
            only_new.open(b"holder-1", &sealed),
            Err(CryptoError::UnknownKey(1))
        ));
    }

    #[test]
    fn keyed_hashes_separate_domains_and_keys() {
        let a = Crypto::new(&[(1, [1; 32])], 1, [9; 32]).unwrap();
        let b = Crypto::new(&[(1, [1; 32])], 1, [8; 32]).unwrap();
        assert_eq!(
            a.keyed_hash("phone", "+8613800138000"),
            a.keyed_hash("phone", "+8613800138000")
        );
        assert_ne!(
            a.keyed_hash("phone", "+8613800138000"),
            a.keyed_hash("resident-id", "+8613800138000")
        );
        assert_ne!(
            a.keyed_hash("phone", "+8613800138000"),
            b.keyed_hash("phone", "+8613800138000")
        );
    }

    fn person(resident_id: Option<&str>, passport: Option<(&str, &str)>) -> crate::PersonalData {
        crate::PersonalData {
            name: "Anna Eriksson".into(),
            resident_id: resident_id.map(str::to_owned),
            passport: passport.map(|p| p.0.to_owned()),
            nationality: passport.map(|p| p.1.to_owned()),
            birth_date: time::macros::date!(1990 - 03 - 07),
            phone: "+46701234567".into(),
            arrival: None,
        }
    }

    #[test]
    fn a_holder_is_sealed_under_the_hash_a_search_for_the_document_finds() {
        use crate::HolderKind::{Resident, Visitor};
        let c = Crypto::new(&[(1, [1; 32])], 1, [9; 32]).unwrap();
        let at = time::macros::datetime!(2026-11-20 08:00 UTC);
        let today = at.date();
        let id = healthcode_domain::HolderId::from_bytes(&[1; 8]).unwrap();
        let seal = |kind, data: &crate::PersonalData| c.seal_holder(id.clone(), kind, data, "A*** E.", at);
        // Registered with a lower-case check character, searched for in upper case and lower.
        let resident = seal(Resident, &person(Some("11010119900307803x"), None)).unwrap();
        for typed in ["11010119900307803X", " 11010119900307803x"] {
            let doc = IdentityDocument::parse(Some(typed), None, None, today).unwrap();
            assert_eq!(resident.identity_hash, c.identity_hash(&doc), "{typed}");
        }
        assert_eq!(
            identity_key(&IdentityDocument::parse(Some("11010119900307803x"), None, None, today).unwrap()),
            ("resident-id", "11010119900307803X".to_owned())
        );
        // A passport registered in lower case, searched for in upper case, and the reverse.
        let visitor = seal(Visitor, &person(None, Some(("l898902c3", "swe")))).unwrap();
        let doc = IdentityDocument::parse(None, Some("L898902C3"), Some("SWE"), today).unwrap();
        assert_eq!(identity_key(&doc), ("passport", "SWE:L898902C3".to_owned()));
        assert_eq!(visitor.identity_hash, c.identity_hash(&doc));
        let upper = seal(Visitor, &person(None, Some(("L898902C3", "SWE")))).unwrap();
        let doc = IdentityDocument::parse(None, Some("l898902c3"), Some("swe"), today).unwrap();
        assert_eq!(upper.identity_hash, c.identity_hash(&doc));
        assert_ne!(resident.identity_hash, visitor.identity_hash);
    }

    #[test]
    fn a_resident_born_today_in_beijing_before_eight_is_sealed() {
        // 04:00 on 1 December in Beijing is still 30 November by UTC.
        let at = time::macros::datetime!(2026-11-30 20:00 UTC);
        let digits: [u8; 17] = *b"11010120261201001";
        let number = format!(
            "{}{}",
            std::str::from_utf8(&digits).unwrap(),
            healthcode_domain::resident_id_check_char(&digits)
        );
        let c = Crypto::new(&[(1, [1; 32])], 1, [9; 32]).unwrap();
        let id = healthcode_domain::HolderId::from_bytes(&[2; 8]).unwrap();
        let mut newborn = person(Some(&number), None);
        newborn.birth_date = time::macros::date!(2026 - 12 - 01);
        c.seal_holder(id, crate::HolderKind::Resident, &newborn, "A*** E.", at)
            .unwrap();
        // But not a day later than anywhere has reached.
        let digits: [u8; 17] = *b"11010120261202001";
        let number = format!(
            "{}{}",
            std::str::from_utf8(&digits).unwrap(),
            healthcode_domain::resident_id_check_char(&digits)
        );
        let id = healthcode_domain::HolderId::from_bytes(&[3; 8]).unwrap();
        assert!(
            c.seal_holder(
                id,
                crate::HolderKind::Resident,
                &person(Some(&number), None),
                "A*** E.",
                at
            )
            .is_err()
        );
    }

    #[test]
    fn a_holder_without_a_valid_document_of_their_kind_is_not_sealed() {
        use crate::HolderKind::{Resident, Visitor};
        let c = Crypto::new(&[(1, [1; 32])], 1, [9; 32]).unwrap();
        let at = time::macros::datetime!(2026-11-20 08:00 UTC);
        let id = healthcode_domain::HolderId::from_bytes(&[1; 8]).unwrap();
        let seal = |kind, data: &crate::PersonalData| c.seal_holder(id.clone(), kind, data, "A*** E.", at);
        let refused = [
            (Resident, person(None, None)),
            (Resident, person(Some("110101199003078031"), None)),
            (Resident, person(None, Some(("L898902C3", "SWE")))),
            (Visitor, person(Some("11010119900307803X"), None)),
            (Visitor, person(None, Some(("L898902C3!", "SWE")))),
            (
                Visitor,
                person(Some("11010119900307803X"), Some(("L898902C3", "SWE"))),
            ),
        ];
        for (kind, data) in &refused {
            let e = seal(*kind, data).unwrap_err();
            assert!(matches!(e, CryptoError::NoDocument { .. }), "{kind:?}: {e}");
            assert!(e.to_string().contains(kind.as_str()), "{e}");
        }
        // A mistyped number says why, in the error's source.
        let e = seal(Resident, &refused[1].1).unwrap_err();
        let why = std::error::Error::source(&e).unwrap().to_string();
        assert!(why.contains("check character"), "{why}");
    }

    #[test]
    fn key_material_round_trips() {
        let (_, m) = Crypto::generate().unwrap();
        let back = KeyMaterial::from_text(&m.to_text()).unwrap();
        assert_eq!(back.hmac_key, m.hmac_key);
        assert_eq!(back.data_keys, m.data_keys);
        assert!(KeyMaterial::from_text("hmac zz").is_err());
        let doubled = format!("{}data 1 {}\n", &*m.to_text(), "00".repeat(32));
        assert!(
            KeyMaterial::from_text(&doubled)
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        assert!(!format!("{m:?}").contains(&data_encoding::HEXLOWER.encode(&m.hmac_key)));
    }
}
