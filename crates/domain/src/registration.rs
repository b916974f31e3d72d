//! What a resident or a visitor gives to register, checked as a whole: every field parsed, and a
//! visitor's machine-readable zone, when given, matched to the typed fields.

use time::Date;

use crate::identity::{IdentityError, Nationality, PassportNumber, Phone, ResidentIdNumber, Td3};

fn err(msg: impl Into<String>) -> IdentityError {
    IdentityError(msg.into())
}

/// A person's full name as written on their document: 1 to 100 characters, no control characters.
#[derive(Clone, PartialEq, Eq)]
pub struct FullName(String);

impl FullName {
    /// Parses a name, trimming surrounding white space.
    pub fn parse(s: &str) -> Result<FullName, IdentityError> {
        let s = s.trim();
        let n = s.chars().count();
        if n == 0 || n > 100 {
            return Err(err("a name has 1 to 100 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(err("a name cannot contain control characters"));
        }
        Ok(FullName(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `other` is the same name as written on a document: compared with white space
    /// collapsed and letters in one case (`ANNA  eriksson` is `Anna Eriksson`), nothing looser.
    pub fn same_as(&self, other: &str) -> bool {
        fn folded(s: &str) -> String {
            s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
        }
        folded(&self.0) == folded(other)
    }
}

impl std::fmt::Debug for FullName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FullName(…)")
    }
}

/// A flight number: a two-character airline designator (letters or digits, not two digits), 1 to 4
/// digits, and an optional operational suffix letter: `CA981`, `MU5101`, `9C8541`, `BA39A`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlightNumber(String);

impl FlightNumber {
    /// Parses a flight number; spaces are removed and letters upper-cased (`ca 981` → `CA981`).
    pub fn parse(s: &str) -> Result<FlightNumber, IdentityError> {
        let s: String = s
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        let b = s.as_bytes();
        let bad = || err(format!("{s:?} is not a flight number such as CA981"));
        if b.len() < 3
            || !b[..2].iter().all(u8::is_ascii_alphanumeric)
            || b[..2].iter().all(u8::is_ascii_digit)
        {
            return Err(bad());
        }
        let rest = &b[2..];
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let suffix = &rest[digits..];
        if !(1..=4).contains(&digits) || suffix.len() > 1 || !suffix.iter().all(u8::is_ascii_uppercase) {
            return Err(bad());
        }
        Ok(FlightNumber(s))
    }

    /// The flight number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A resident's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResidentRegistration {
    /// Name.
    pub name: FullName,
    /// Resident ID number.
    pub id_number: ResidentIdNumber,
    /// Phone, confirmed by a one-time code.
    pub phone: Phone,
}

impl ResidentRegistration {
    /// Parses the fields; `today` bounds the birth date in the ID number.
    pub fn parse(
        name: &str,
        id_number: &str,
        phone: &str,
        today: Date,
    ) -> Result<ResidentRegistration, IdentityError> {
        Ok(ResidentRegistration {
            name: FullName::parse(name)?,
            id_number: ResidentIdNumber::parse(id_number, today)?,
            phone: Phone::parse(phone)?,
        })
    }
}

/// A foreign visitor's registration (the international version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorRegistration {
    /// Name as in the passport.
    pub name: FullName,
    /// Passport number.
    pub passport: PassportNumber,
    /// Nationality.
    pub nationality: Nationality,
    /// Date of birth.
    pub birth_date: Date,
    /// Arrival flight.
    pub flight: FlightNumber,
    /// Arrival date.
    pub arrival: Date,
    /// Phone, confirmed by a one-time code.
    pub phone: Phone,
}

/// A visitor's registration as typed.
#[derive(Debug, Clone, Copy)]
pub struct VisitorInput<'a> {
    /// Name.
    pub name: &'a str,
    /// Passport number.
    pub passport: &'a str,
    /// Nationality (alpha-3).
    pub nationality: &'a str,
    /// Date of birth.
    pub birth_date: Date,
    /// The two MRZ lines, when the passport was scanned or typed.
    pub mrz: Option<(&'a str, &'a str)>,
    /// Arrival flight.
    pub flight: &'a str,
    /// Arrival date.
    pub arrival: Date,
    /// Phone.
    pub phone: &'a str,
}

impl VisitorRegistration {
    /// Parses the fields, and checks the MRZ's check digits and that it agrees with them.
    pub fn parse(input: VisitorInput<'_>, today: Date) -> Result<VisitorRegistration, IdentityError> {
        if input.birth_date > today {
            return Err(err("the date of birth is in the future"));
        }
        let passport = PassportNumber::parse(input.passport)?;
        let nationality = Nationality::parse(input.nationality)?;
        if let Some((l1, l2)) = input.mrz {
            Td3::parse(l1, l2)?.matches(&passport, &nationality, input.birth_date)?;
        }
        Ok(VisitorRegistration {
            name: FullName::parse(input.name)?,
            passport,
            nationality,
            birth_date: input.birth_date,
            flight: FlightNumber::parse(input.flight)?,
            arrival: input.arrival,
            phone: Phone::parse(input.phone)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn names_compare_as_written_not_loosely() {
        let n = FullName::parse("Anna Maria Eriksson").unwrap();
        assert!(n.same_as("  ANNA maria   eriksson "));
        assert!(!n.same_as("Anna Eriksson"));
        assert!(!n.same_as("Anna Maria Eriksson Jr"));
        let z = FullName::parse("张三丰").unwrap();
        assert!(z.same_as("张三丰"));
        assert!(!z.same_as("张三"));
    }

    #[test]
    fn flight_numbers() {
        for ok in ["CA981", "ca 981", "MU5101", "9C8541", "BA39A", "U21"] {
            assert!(FlightNumber::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "CA", "12345", "CA12345", "CA98AB", "C$981"] {
            assert!(FlightNumber::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(FlightNumber::parse("ca 981").unwrap().as_str(), "CA981");
    }

    #[test]
    fn a_visitor_with_the_icao_specimen_passport() {
        let input = VisitorInput {
            name: "Anna Maria Eriksson",
            passport: "L898902C3",
            nationality: "UTO",
            birth_date: date!(1974 - 08 - 12),
            mrz: Some((
                "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
                "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
            )),
            flight: "SK997",
            arrival: date!(2026 - 11 - 28),
            phone: "+46 70 123 45 67",
        };
        let today = date!(2026 - 11 - 29);
        let v = VisitorRegistration::parse(input, today).unwrap();
        assert_eq!(v.passport.as_str(), "L898902C3");
        let typo = VisitorInput {
            birth_date: date!(1974 - 08 - 21),
            ..input
        };
        let e = VisitorRegistration::parse(typo, today).unwrap_err();
        assert!(e.0.contains("date of birth"), "{e}");
        let bad_mrz = VisitorInput {
            mrz: Some((
                "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
                "L898902C37UTO7408122F1204159ZE184226B<<<<<10",
            )),
            ..input
        };
        assert!(
            VisitorRegistration::parse(bad_mrz, today)
                .unwrap_err()
                .0
                .contains("check digit")
        );
        let no_mrz = VisitorInput { mrz: None, ..input };
        assert!(VisitorRegistration::parse(no_mrz, today).is_ok());
    }

    #[test]
    fn a_resident() {
        let today = date!(2026 - 11 - 29);
        let r =
            ResidentRegistration::parse(" 张三 ", "11010519491231002X", "+86 138 0013 8000", today).unwrap();
        assert_eq!(r.name.as_str(), "张三");
        assert!(ResidentRegistration::parse("", "11010519491231002X", "+8613800138000", today).is_err());
        assert!(ResidentRegistration::parse("张三", "11010519491231002X", "13800138000", today).is_err());
        assert!(!format!("{r:?}").contains("张三"));
    }
}
