//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA1, 30-second steps,
//! six digits, what every authenticator app speaks. A code is accepted for the step it was made
//! in and one step either side (clocks drift); which step was used is returned, so that the
//! store can refuse it a second time.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::problem::ApiError;

/// Seconds a code lasts.
pub const STEP_SECONDS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Bytes of a secret (160 bits, as RFC 4226 recommends).
pub const SECRET_LEN: usize = 20;

/// The time step `t` falls in.
pub fn step_at(t: OffsetDateTime) -> i64 {
    t.unix_timestamp().div_euclid(STEP_SECONDS)
}

/// The code for `step` (HOTP with the step as counter), as six digits.
pub fn code(secret: &[u8], step: i64) -> String {
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes a key of any length; this is never reached.
        Err(_) => return String::new(),
    };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:0width$}", binary % 10u32.pow(DIGITS), width = DIGITS as usize)
}

/// The step whose code `given` is, among the steps around `now` (one either side), compared in
/// constant time; `None` when it is none of them or not six digits.
pub fn matching_step(secret: &[u8], given: &str, now: OffsetDateTime) -> Option<i64> {
    let given = given.trim();
    if given.len() != DIGITS as usize || !given.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now);
    let mut found = None;
    for step in [current - 1, current, current + 1] {
        let expected = code(secret, step);
        let same = expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if same && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// A new random secret.
pub fn new_secret() -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let mut secret = Zeroizing::new(vec![0u8; SECRET_LEN]);
    getrandom::fill(&mut secret).map_err(|e| ApiError::internal("no randomness", e))?;
    Ok(secret)
}

/// The secret as authenticator apps take it typed in: base32 without padding.
pub fn secret_text(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The `otpauth://` URI an authenticator app reads from a QR code.
pub fn uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let issuer = urlencoding::encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        urlencoding::encode(account),
        secret_text(secret),
    )
}

/// A recovery code: 16 characters of base32 (80 bits) in four groups, `abcd-efgh-jklm-npqr`.
pub fn new_recovery_code() -> Result<String, ApiError> {
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("no randomness", e))?;
    let text = data_encoding::BASE32_NOPAD.encode(&bytes).to_ascii_lowercase();
    Ok(text
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-"))
}

/// A recovery code as typed, reduced to what it hashes as: lower case, no spaces or dashes.
pub fn normalised_recovery_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// RFC 6238, appendix B (SHA-1): the eight-digit codes end in these six digits.
    #[test]
    fn the_rfc_6238_test_vectors() {
        let secret = b"12345678901234567890";
        for (t, expected) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
            (20_000_000_000, "353130"),
        ] {
            let at = OffsetDateTime::from_unix_timestamp(t).unwrap();
            assert_eq!(code(secret, step_at(at)), expected, "t = {t}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_its_neighbours_only() {
        let secret = b"12345678901234567890";
        let now = OffsetDateTime::from_unix_timestamp(1_234_567_890).unwrap();
        let s = step_at(now);
        for d in [-1, 0, 1] {
            assert_eq!(matching_step(secret, &code(secret, s + d), now), Some(s + d));
        }
        for d in [-3, -2, 2, 3] {
            assert_eq!(matching_step(secret, &code(secret, s + d), now), None);
        }
        assert_eq!(matching_step(secret, "12345", now), None);
        assert_eq!(matching_step(secret, "abcdef", now), None);
        assert_eq!(
            matching_step(b"another secret......", &code(secret, s), now),
            None
        );
    }

    #[test]
    fn recovery_codes_are_random_and_typed_loosely() {
        let a = new_recovery_code().unwrap();
        assert_eq!(a.len(), 19);
        assert_ne!(a, new_recovery_code().unwrap());
        assert_eq!(
            normalised_recovery_code(&a.to_uppercase().replace('-', " ")),
            a.replace('-', "")
        );
    }

    #[test]
    fn the_uri_names_the_account_and_the_secret() {
        let u = uri(b"12345678901234567890", "healthcode CN-ZJ", "li.na");
        assert!(
            u.starts_with("otpauth://totp/healthcode%20CN-ZJ:li.na?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&"),
            "{u}"
        );
    }
}
