//! The claims a holder code carries, as types that can only hold valid values.

use std::fmt;

use time::{Date, OffsetDateTime};

/// Why a claim value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClaimError(pub String);

fn claim_err(msg: impl Into<String>) -> ClaimError {
    ClaimError(msg.into())
}

/// The colour of a health code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    /// Move freely.
    Green,
    /// Seven days of home observation.
    Yellow,
    /// Fourteen days of quarantine.
    Red,
}

impl Colour {
    /// The value carried in the token (claim -2).
    pub fn code(self) -> u8 {
        match self {
            Colour::Green => 0,
            Colour::Yellow => 1,
            Colour::Red => 2,
        }
    }

    /// The colour for a token value.
    pub fn from_code(code: u64) -> Option<Colour> {
        match code {
            0 => Some(Colour::Green),
            1 => Some(Colour::Yellow),
            2 => Some(Colour::Red),
            _ => None,
        }
    }

    /// Lower-case English name.
    pub fn as_str(self) -> &'static str {
        match self {
            Colour::Green => "green",
            Colour::Yellow => "yellow",
            Colour::Red => "red",
        }
    }
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Colour {
    type Err = ClaimError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "green" => Ok(Colour::Green),
            "yellow" => Ok(Colour::Yellow),
            "red" => Ok(Colour::Red),
            other => Err(claim_err(format!(
                "unknown colour {other:?}: expected green, yellow or red"
            ))),
        }
    }
}

/// The region that issued a code: an ISO 3166-1 alpha-2 country code, optionally followed by an
/// ISO 3166-2 subdivision (`CN`, `CN-ZJ`, `GB-ENG`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Issuer(String);

impl Issuer {
    /// Parses an issuer code.
    pub fn parse(s: &str) -> Result<Issuer, ClaimError> {
        let bytes = s.as_bytes();
        let country_ok = bytes.len() >= 2 && bytes[..2].iter().all(u8::is_ascii_uppercase);
        let rest = &bytes[2.min(bytes.len())..];
        let sub_ok = rest.is_empty()
            || (rest[0] == b'-'
                && (2..=4).contains(&rest.len())
                && rest[1..]
                    .iter()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()));
        if country_ok && sub_ok {
            Ok(Issuer(s.to_owned()))
        } else {
            Err(claim_err(format!(
                "issuer {s:?} is not an ISO 3166 region code such as CN or CN-ZJ"
            )))
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Issuer {
    type Error = ClaimError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Issuer::parse(&s)
    }
}

impl From<Issuer> for String {
    fn from(i: Issuer) -> String {
        i.0
    }
}

/// A random, pseudonymous holder id: 8 to 16 bytes. It is never derived from an identity number or
/// a name; only the issuing server can tell whom it stands for.
///
/// Held inline (no allocation), since tracing handles millions of them; compared, ordered and
/// hashed as its bytes.
#[derive(Clone)]
pub struct HolderId {
    len: u8,
    bytes: [u8; HolderId::MAX_LEN],
}

impl PartialEq for HolderId {
    fn eq(&self, other: &HolderId) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for HolderId {}

impl std::hash::Hash for HolderId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialOrd for HolderId {
    fn partial_cmp(&self, other: &HolderId) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HolderId {
    fn cmp(&self, other: &HolderId) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl HolderId {
    /// Smallest allowed length in bytes.
    pub const MIN_LEN: usize = 8;
    /// Largest allowed length in bytes.
    pub const MAX_LEN: usize = 16;

    /// Wraps bytes, checking the length.
    pub fn from_bytes(bytes: &[u8]) -> Result<HolderId, ClaimError> {
        if (Self::MIN_LEN..=Self::MAX_LEN).contains(&bytes.len()) {
            let mut inline = [0u8; Self::MAX_LEN];
            inline[..bytes.len()].copy_from_slice(bytes);
            Ok(HolderId {
                len: bytes.len() as u8,
                bytes: inline,
            })
        } else {
            Err(claim_err(format!(
                "subject must be {} to {} bytes, got {}",
                Self::MIN_LEN,
                Self::MAX_LEN,
                bytes.len()
            )))
        }
    }

    /// Parses lower- or upper-case hex.
    pub fn from_hex(s: &str) -> Result<HolderId, ClaimError> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .map_err(|e| claim_err(format!("subject {s:?} is not hex: {e}")))?;
        HolderId::from_bytes(&bytes)
    }

    /// A fresh random id of 8 bytes from the operating system's generator.
    pub fn random() -> Result<HolderId, getrandom::Error> {
        let mut bytes = [0u8; Self::MAX_LEN];
        getrandom::fill(&mut bytes[..Self::MIN_LEN])?;
        Ok(HolderId {
            len: Self::MIN_LEN as u8,
            bytes,
        })
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(self.as_bytes())
    }
}

impl fmt::Debug for HolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HolderId({})", self.to_hex())
    }
}

impl fmt::Display for HolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A masked name a guard can match against a face or a document without learning the name: "张*",
/// "S*** J.". At most 16 characters and 48 bytes, no control characters, and at least one `*` so a
/// full name can never be put in a code by mistake.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NameHint(String);

impl NameHint {
    /// Largest allowed length in characters.
    pub const MAX_CHARS: usize = 16;
    /// Largest allowed length in UTF-8 bytes.
    pub const MAX_BYTES: usize = 48;

    /// Parses an already masked hint.
    pub fn parse(s: &str) -> Result<NameHint, ClaimError> {
        let chars = s.chars().count();
        if chars == 0 {
            return Err(claim_err("name hint is empty"));
        }
        if chars > Self::MAX_CHARS || s.len() > Self::MAX_BYTES {
            return Err(claim_err(format!(
                "name hint {s:?} is longer than {} characters or {} bytes",
                Self::MAX_CHARS,
                Self::MAX_BYTES
            )));
        }
        if s.chars().any(|c| c.is_control() || is_invisible_format(c)) {
            return Err(claim_err(
                "name hint contains a control or invisible formatting character",
            ));
        }
        if s.trim() != s {
            return Err(claim_err("name hint starts or ends with white space"));
        }
        if !s.contains('*') {
            return Err(claim_err(format!(
                "name hint {s:?} is not masked: it must hide part of the name with '*'"
            )));
        }
        Ok(NameHint(s.to_owned()))
    }

    /// Masks a full name: "张三" → "张*", "张三丰" → "张**", "Sam Jones" → "S*** J.",
    /// "Maria de la Cruz" → "M*** C.".
    pub fn mask(full_name: &str) -> Result<NameHint, ClaimError> {
        let words: Vec<&str> = full_name.split_whitespace().collect();
        let hint = match words.as_slice() {
            [] => return Err(claim_err("name is empty")),
            [only] => {
                let mut chars = only.chars();
                let first = chars.next().map(|c| c.to_string()).unwrap_or_default();
                let hidden = chars.count().clamp(1, 3);
                format!("{first}{}", "*".repeat(hidden))
            }
            [first, .., last] => {
                let f = first.chars().next().map(|c| c.to_string()).unwrap_or_default();
                let l = last.chars().next().map(|c| c.to_string()).unwrap_or_default();
                format!("{f}*** {l}.")
            }
        };
        NameHint::parse(&hint)
    }

    /// The hint as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NameHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Zero-width and bidirectional formatting characters, which could make a hint read differently
/// on a guard's screen than its bytes say.
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Days from 1970-01-01 to a date (negative before it).
pub fn date_to_epoch_days(date: Date) -> i64 {
    i64::from(date.to_julian_day()) - i64::from(EPOCH_JULIAN_DAY)
}

/// The date that many days after 1970-01-01, if it is representable.
pub fn epoch_days_to_date(days: i64) -> Option<Date> {
    let jd = i32::try_from(days.checked_add(i64::from(EPOCH_JULIAN_DAY))?).ok()?;
    Date::from_julian_day(jd).ok()
}

const EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// Everything a holder code states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeClaims {
    /// The issuing region.
    pub issuer: Issuer,
    /// The holder's pseudonymous id.
    pub subject: HolderId,
    /// When the code was signed (whole seconds).
    pub issued_at: OffsetDateTime,
    /// When the code stops being valid (whole seconds, after `issued_at`).
    pub expires_at: OffsetDateTime,
    /// The colour.
    pub colour: Colour,
    /// The masked name a guard compares with the person.
    pub name_hint: Option<NameHint>,
    /// The date from which the colour may turn green; only for yellow and red codes, and absent when
    /// the end is not known yet (an open case).
    pub green_from: Option<Date>,
}

impl CodeClaims {
    /// Longest validity a code may have: a printed code for someone without a phone lasts a week.
    pub const MAX_TTL_SECONDS: i64 = 7 * 24 * 3600;

    /// Checks the relations between claims that single types cannot: expiry after issue, a TTL no
    /// longer than [`Self::MAX_TTL_SECONDS`], and a green-from date only on a yellow or red code.
    pub fn check(&self) -> Result<(), ClaimError> {
        if self.issued_at.nanosecond() != 0 || self.expires_at.nanosecond() != 0 {
            return Err(claim_err("times must be whole seconds"));
        }
        let in_range = |d: Date| (1970..=9000).contains(&d.year());
        if !in_range(self.issued_at.date())
            || !in_range(self.expires_at.date())
            || !self.green_from.is_none_or(in_range)
        {
            return Err(claim_err("dates must lie between 1970 and 9000"));
        }
        let ttl = (self.expires_at - self.issued_at).whole_seconds();
        if ttl <= 0 {
            return Err(claim_err("expiry is not after the time of issue"));
        }
        if ttl > Self::MAX_TTL_SECONDS {
            return Err(claim_err(format!(
                "validity of {ttl} s is longer than the allowed {} s",
                Self::MAX_TTL_SECONDS
            )));
        }
        if self.colour == Colour::Green && self.green_from.is_some() {
            return Err(claim_err("a green code cannot carry a green-from date"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_codes() {
        for ok in ["CN", "CN-ZJ", "GB-ENG", "FR-75C", "CN-11"] {
            assert!(Issuer::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "cn-zj", "C", "CN-", "CN-ZJXX", "CNZJ", "CN ZJ", "中国"] {
            assert!(Issuer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn masking_names() {
        assert_eq!(NameHint::mask("张三").unwrap().as_str(), "张*");
        assert_eq!(NameHint::mask("张三丰").unwrap().as_str(), "张**");
        assert_eq!(NameHint::mask("Sam Jones").unwrap().as_str(), "S*** J.");
        assert_eq!(NameHint::mask("Maria de la Cruz").unwrap().as_str(), "M*** C.");
        assert_eq!(NameHint::mask("欧阳娜娜娜娜").unwrap().as_str(), "欧***");
        assert!(NameHint::mask("   ").is_err());
    }

    #[test]
    fn unmasked_names_are_refused() {
        assert!(NameHint::parse("张三").is_err());
        assert!(NameHint::parse("Sam Jones").is_err());
        assert!(NameHint::parse("S*** J.\n").is_err());
        assert!(NameHint::parse(&"*".repeat(17)).is_err());
        assert!(NameHint::parse("S*** J.\u{202E}").is_err());
        assert!(NameHint::parse("张\u{200B}*").is_err());
    }

    #[test]
    fn holder_id_lengths() {
        assert!(HolderId::from_hex("0011223344556677").is_ok());
        assert!(HolderId::from_hex("00112233445566").is_err());
        assert!(HolderId::from_hex(&"ab".repeat(17)).is_err());
        assert!(HolderId::from_hex("zz11223344556677").is_err());
    }

    #[test]
    fn epoch_days_round_trip() {
        let d = time::macros::date!(2026 - 12 - 06);
        assert_eq!(date_to_epoch_days(time::macros::date!(1970 - 01 - 01)), 0);
        assert_eq!(epoch_days_to_date(date_to_epoch_days(d)), Some(d));
    }
}
