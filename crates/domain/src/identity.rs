//! Real-name identities: the resident ID number (GB 11643), passports with their machine-readable
//! zone (ICAO 9303 TD3), nationalities and phone numbers. Each type can only hold a valid value,
//! and none prints its value in `Debug`: personal data stays out of logs.

use std::fmt;

use time::{Date, Month, OffsetDateTime};

/// Why an identity value was refused. The message names the problem, never the full value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdentityError(pub String);

fn err(msg: impl Into<String>) -> IdentityError {
    IdentityError(msg.into())
}

/// Province-level codes that open a resident ID number's six-digit region code.
const PROVINCES: [u8; 34] = [
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53, 54,
    61, 62, 63, 64, 65, 71, 81, 82,
];

/// ISO 7064 MOD 11-2 weights for the first 17 characters.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];

/// The check character (ISO 7064 MOD 11-2) for 17 digits: `0`–`9` or `X`.
pub fn resident_id_check_char(digits: &[u8; 17]) -> char {
    let sum: u32 = digits
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    match (12 - sum % 11) % 11 {
        10 => 'X',
        v => char::from(b'0' + v as u8),
    }
}

/// An 18-character resident identity number: six-digit region code, birth date (YYYYMMDD),
/// three-digit sequence, ISO 7064 MOD 11-2 check character (`0`–`9` or `X`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ResidentIdNumber(String);

impl ResidentIdNumber {
    /// Parses a number; `today` bounds the birth date. A lower-case `x` is accepted and stored upper.
    pub fn parse(s: &str, today: Date) -> Result<ResidentIdNumber, IdentityError> {
        let s = s.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        if b.len() != 18 {
            return Err(err(format!(
                "a resident ID number has 18 characters, this has {}",
                s.chars().count()
            )));
        }
        let digits: &[u8; 17] = b[..17].try_into().map_err(|_| err("not 18 characters"))?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(err(
                "the first 17 characters of a resident ID number must be digits",
            ));
        }
        if !(b[17].is_ascii_digit() || b[17] == b'X') {
            return Err(err(
                "the last character of a resident ID number must be a digit or X",
            ));
        }
        let province = (b[0] - b'0') * 10 + (b[1] - b'0');
        if !PROVINCES.contains(&province) {
            return Err(err(format!("{province} is not a province code")));
        }
        let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
        let (year, month, day) = (num(6..10), num(10..12), num(12..14));
        let birth = i32::try_from(year)
            .ok()
            .zip(u8::try_from(month).ok().and_then(|m| Month::try_from(m).ok()))
            .and_then(|(y, m)| Date::from_calendar_date(y, m, u8::try_from(day).ok()?).ok())
            .ok_or_else(|| {
                err(format!(
                    "{year:04}-{month:02}-{day:02} is not a date of birth that exists"
                ))
            })?;
        if year < 1900 || birth > today {
            return Err(err("the date of birth is before 1900 or in the future"));
        }
        let expected = resident_id_check_char(digits);
        if char::from(b[17]) != expected {
            return Err(err("the check character does not match: the number is mistyped"));
        }
        Ok(ResidentIdNumber(s))
    }

    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The date of birth it encodes.
    pub fn birth_date(&self) -> Option<Date> {
        let num = |r: std::ops::Range<usize>| self.0[r].parse::<u8>().ok();
        let year = self.0[6..10].parse::<i32>().ok()?;
        Date::from_calendar_date(year, Month::try_from(num(10..12)?).ok()?, num(12..14)?).ok()
    }
}

impl fmt::Debug for ResidentIdNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResidentIdNumber({}…{})", &self.0[..2], &self.0[16..])
    }
}

/// An ISO 3166-1 alpha-3 nationality as passports write it (`CHN`, `GBR`, `UTO` in ICAO specimens;
/// `D` padded as `D<<` for Germany in an MRZ is written `DEU` here).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Nationality(String);

impl Nationality {
    /// Parses three upper-case letters.
    pub fn parse(s: &str) -> Result<Nationality, IdentityError> {
        let s = s.trim().to_ascii_uppercase();
        if s.len() == 3 && s.bytes().all(|c| c.is_ascii_uppercase()) {
            Ok(Nationality(s))
        } else {
            Err(err(format!(
                "{s:?} is not a three-letter nationality code such as GBR"
            )))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A passport number: 1 to 9 letters and digits (the MRZ field's width).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PassportNumber(String);

impl PassportNumber {
    /// Parses a number, upper-casing letters.
    pub fn parse(s: &str) -> Result<PassportNumber, IdentityError> {
        let s = s.trim().to_ascii_uppercase();
        if (1..=9).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
            Ok(PassportNumber(s))
        } else {
            Err(err("a passport number has 1 to 9 letters and digits"))
        }
    }

    /// The number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PassportNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PassportNumber(…)")
    }
}

/// The ICAO 9303 check digit over MRZ characters: weights 7, 3, 1; digits count as themselves,
/// letters A–Z as 10–35, the filler `<` as 0.
pub fn mrz_check_digit(field: &str) -> Option<u8> {
    let mut sum = 0u32;
    for (i, c) in field.bytes().enumerate() {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            b'<' => 0,
            _ => return None,
        };
        sum += v * [7, 3, 1][i % 3];
    }
    Some((sum % 10) as u8)
}

/// The fields of a TD3 (passport) machine-readable zone whose check digits all hold.
#[derive(Clone, PartialEq, Eq)]
pub struct Td3 {
    /// Issuing state.
    pub issuing_state: String,
    /// Surname (primary identifier), fillers turned to spaces.
    pub surname: String,
    /// Given names (secondary identifier).
    pub given_names: String,
    /// Document number, fillers removed.
    pub passport_number: PassportNumber,
    /// Nationality as written, fillers removed (`UTO`; Germany's `D<<` is `D`).
    pub nationality: String,
    /// Birth date as written: YYMMDD.
    pub birth_yymmdd: String,
    /// Sex: `M`, `F` or `<`.
    pub sex: char,
    /// Expiry date as written: YYMMDD.
    pub expiry_yymmdd: String,
}

impl fmt::Debug for Td3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Td3(issued by {})", self.issuing_state)
    }
}

impl Td3 {
    /// Parses the two 44-character lines, checking every check digit (document number, birth
    /// date, expiry, optional data, composite).
    pub fn parse(line1: &str, line2: &str) -> Result<Td3, IdentityError> {
        let (l1, l2) = (line1.trim(), line2.trim());
        for (n, l) in [(1, l1), (2, l2)] {
            if l.len() != 44
                || !l
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'<')
            {
                return Err(err(format!(
                    "MRZ line {n} must be 44 characters of A-Z, 0-9 and <"
                )));
            }
        }
        if !l1.starts_with('P') {
            return Err(err("MRZ line 1 of a passport starts with P"));
        }
        let check = |field: &str, digit: &str, what: &str| -> Result<(), IdentityError> {
            let expected =
                mrz_check_digit(field).ok_or_else(|| err(format!("bad character in the {what}")))?;
            let given = if digit == "<" {
                Some(0)
            } else {
                digit.parse::<u8>().ok()
            };
            if given == Some(expected) {
                Ok(())
            } else {
                Err(err(format!("the {what} check digit does not match")))
            }
        };
        check(&l2[0..9], &l2[9..10], "document number")?;
        check(&l2[13..19], &l2[19..20], "birth date")?;
        check(&l2[21..27], &l2[27..28], "expiry date")?;
        check(&l2[28..42], &l2[42..43], "optional data")?;
        let composite = format!("{}{}{}", &l2[0..10], &l2[13..20], &l2[21..43]);
        check(&composite, &l2[43..44], "composite")?;
        let names = &l1[5..];
        let (surname, given) = names.split_once("<<").unwrap_or((names, ""));
        let clean = |s: &str| {
            s.split('<')
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        };
        Ok(Td3 {
            issuing_state: l1[2..5].trim_end_matches('<').to_owned(),
            surname: clean(surname),
            given_names: clean(given),
            passport_number: PassportNumber::parse(l2[0..9].trim_end_matches('<'))?,
            nationality: l2[10..13].trim_end_matches('<').to_owned(),
            birth_yymmdd: l2[13..19].to_owned(),
            sex: char::from(l2.as_bytes()[20]),
            expiry_yymmdd: l2[21..27].to_owned(),
        })
    }

    /// Checks that the zone agrees with what the visitor typed.
    pub fn matches(
        &self,
        number: &PassportNumber,
        nationality: &Nationality,
        birth: Date,
    ) -> Result<(), IdentityError> {
        if &self.passport_number != number {
            return Err(err(
                "the passport number differs from the one in the machine-readable zone",
            ));
        }
        let same = self.nationality == nationality.as_str()
            || (self.nationality == "D" && nationality.as_str() == "DEU");
        if !same {
            return Err(err(
                "the nationality differs from the one in the machine-readable zone",
            ));
        }
        let yymmdd = format!(
            "{:02}{:02}{:02}",
            birth.year().rem_euclid(100),
            u8::from(birth.month()),
            birth.day()
        );
        if self.birth_yymmdd != yymmdd {
            return Err(err(
                "the date of birth differs from the one in the machine-readable zone",
            ));
        }
        Ok(())
    }
}

/// The document a holder registers with and is looked up by: a resident's ID card, or a
/// visitor's passport with its nationality.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentityDocument {
    /// A resident ID number.
    ResidentId(ResidentIdNumber),
    /// A passport number and the nationality that issued it.
    Passport {
        /// Nationality (alpha-3).
        nationality: Nationality,
        /// Passport number.
        number: PassportNumber,
    },
}

/// The latest calendar date anywhere on Earth at `at` (UTC+14): the bound for a birth date that
/// must not lie in the future wherever the person is. A resident born today in Beijing, before
/// 08:00, was born "tomorrow" by the UTC date.
pub fn latest_date_anywhere(at: OffsetDateTime) -> Date {
    (at.to_offset(time::UtcOffset::UTC) + time::Duration::hours(14)).date()
}

impl IdentityDocument {
    /// Parses what an officer typed: a resident ID number alone, or a passport number with its
    /// nationality. `today` bounds the birth date in a resident ID number.
    pub fn parse(
        resident_id: Option<&str>,
        passport: Option<&str>,
        nationality: Option<&str>,
        today: Date,
    ) -> Result<IdentityDocument, IdentityError> {
        match (resident_id, passport, nationality) {
            (Some(id), None, None) => Ok(IdentityDocument::ResidentId(ResidentIdNumber::parse(id, today)?)),
            (None, Some(number), Some(nationality)) => Ok(IdentityDocument::Passport {
                nationality: Nationality::parse(nationality)?,
                number: PassportNumber::parse(number)?,
            }),
            _ => Err(err("give resident_id, or passport with nationality")),
        }
    }
}

/// A phone number in E.164 form (`+8613800138000`), checked against the numbering plan of its
/// country with the `phonenumber` library.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses an international number (with `+` and country code).
    pub fn parse(s: &str) -> Result<Phone, IdentityError> {
        let n = phonenumber::parse(None, s.trim()).map_err(|_| {
            err("not a phone number: give it in international form, such as +86 138 0013 8000")
        })?;
        if !phonenumber::is_valid(&n) {
            return Err(err(
                "this phone number does not exist in its country's numbering plan",
            ));
        }
        Ok(Phone(n.format().mode(phonenumber::Mode::E164).to_string()))
    }

    /// The E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The country calling code (86 for `+8613800138000`).
    pub fn country_code(&self) -> u16 {
        // Parsed at construction, so this parse succeeds; 0 would match no configured country.
        phonenumber::parse(None, &self.0).map_or(0, |n| n.code().value())
    }

    /// A masked form for messages and logs: `+86******8000`.
    pub fn masked(&self) -> String {
        let n = self.0.len();
        let keep_start = 3.min(n);
        let keep_end = 4.min(n.saturating_sub(keep_start));
        format!(
            "{}{}{}",
            &self.0[..keep_start],
            "*".repeat(n - keep_start - keep_end),
            &self.0[n - keep_end..]
        )
    }
}

impl fmt::Debug for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Phone({})", self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 29);

    #[test]
    fn known_valid_resident_numbers() {
        for ok in [
            "11010519491231002X",
            "44030519880101002X",
            "110101199003074477",
            "11010119900307803x",
        ] {
            assert!(ResidentIdNumber::parse(ok, TODAY).is_ok(), "{ok}");
        }
        let id = ResidentIdNumber::parse("11010519491231002X", TODAY).unwrap();
        assert_eq!(id.birth_date(), Some(date!(1949 - 12 - 31)));
    }

    #[test]
    fn known_invalid_resident_numbers() {
        let cases = [
            ("110105194912310021", "check character"), // X expected
            ("440524188001010014", "before 1900"),
            ("330106199001011234", "check character"),
            ("11010519491231002", "18 characters"),
            ("99010519491231002X", "province"),
            ("110105194902300020", "exists"), // 30 February
            ("110105203001010010", "future"),
            ("1101051949123100AX", "digits"),
        ];
        for (s, why) in cases {
            let e = ResidentIdNumber::parse(s, TODAY).unwrap_err();
            assert!(e.0.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn check_character_x() {
        assert_eq!(resident_id_check_char(b"11010519491231002"), 'X');
        assert_eq!(resident_id_check_char(b"11010119900307447"), '7');
    }

    #[test]
    fn debug_hides_the_number() {
        let id = ResidentIdNumber::parse("11010519491231002X", TODAY).unwrap();
        assert!(!format!("{id:?}").contains("1949"));
        let p = Phone::parse("+86 138 0013 8000").unwrap();
        assert_eq!(p.as_str(), "+8613800138000");
        assert!(!format!("{p:?}").contains("13800138"));
    }

    /// ICAO 9303 Part 4's specimen passport of Anna Maria Eriksson, Utopia.
    const SPECIMEN: (&str, &str) = (
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
        "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
    );

    #[test]
    fn icao_specimen_is_valid() {
        let td3 = Td3::parse(SPECIMEN.0, SPECIMEN.1).unwrap();
        assert_eq!(td3.surname, "ERIKSSON");
        assert_eq!(td3.given_names, "ANNA MARIA");
        assert_eq!(td3.passport_number.as_str(), "L898902C3");
        assert_eq!(td3.nationality, "UTO");
        assert_eq!(td3.birth_yymmdd, "740812");
        let number = PassportNumber::parse("L898902C3").unwrap();
        let nat = Nationality::parse("UTO").unwrap();
        assert!(td3.matches(&number, &nat, date!(1974 - 08 - 12)).is_ok());
        assert!(td3.matches(&number, &nat, date!(1974 - 08 - 13)).is_err());
        assert!(
            td3.matches(
                &PassportNumber::parse("L898902C4").unwrap(),
                &nat,
                date!(1974 - 08 - 12)
            )
            .is_err()
        );
    }

    #[test]
    fn each_mrz_check_digit_is_checked() {
        let line2 = SPECIMEN.1;
        for (pos, what) in [
            (9, "document number"),
            (19, "birth date"),
            (27, "expiry"),
            (42, "optional"),
            (43, "composite"),
        ] {
            let mut bad = line2.as_bytes().to_vec();
            bad[pos] = if bad[pos] == b'1' { b'2' } else { b'1' };
            let e = Td3::parse(SPECIMEN.0, std::str::from_utf8(&bad).unwrap()).unwrap_err();
            assert!(e.0.contains(what), "{pos}: {e}");
        }
        assert!(Td3::parse(SPECIMEN.0, &line2[..43]).is_err());
    }

    #[test]
    fn a_document_is_an_id_number_alone_or_a_passport_with_its_nationality() {
        let id = IdentityDocument::parse(Some(" 11010519491231002x "), None, None, TODAY).unwrap();
        assert_eq!(
            id,
            IdentityDocument::ResidentId(ResidentIdNumber::parse("11010519491231002X", TODAY).unwrap())
        );
        let passport = IdentityDocument::parse(None, Some("l898902c3"), Some("uto"), TODAY).unwrap();
        assert_eq!(
            passport,
            IdentityDocument::Passport {
                nationality: Nationality::parse("UTO").unwrap(),
                number: PassportNumber::parse("L898902C3").unwrap(),
            }
        );
        for (resident_id, passport, nationality) in [
            (None, None, None),
            (Some("11010519491231002X"), Some("L898902C3"), Some("UTO")),
            (Some("11010519491231002X"), None, Some("UTO")),
            (None, Some("L898902C3"), None),
            (None, None, Some("UTO")),
        ] {
            let e = IdentityDocument::parse(resident_id, passport, nationality, TODAY).unwrap_err();
            assert_eq!(e.0, "give resident_id, or passport with nationality");
        }
        let e = IdentityDocument::parse(Some("110105194912310021"), None, None, TODAY).unwrap_err();
        assert!(e.0.contains("check character"), "{e}");
        assert!(IdentityDocument::parse(None, Some("L898902C3"), Some("U1O"), TODAY).is_err());
        assert!(!format!("{id:?}").contains("1949"));
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(
            Phone::parse("+44 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
        assert!(Phone::parse("13800138000").is_err()); // no country code
        assert!(Phone::parse("+86 123").is_err());
        assert!(Phone::parse("call me").is_err());
        assert_eq!(Phone::parse("+8613800138000").unwrap().masked(), "+86*******8000");
        assert_eq!(Phone::parse("+8613800138000").unwrap().country_code(), 86);
        assert_eq!(Phone::parse("+1 202 555 0143").unwrap().country_code(), 1);
        assert_eq!(Phone::parse("+852 5123 4567").unwrap().country_code(), 852);
    }
}
