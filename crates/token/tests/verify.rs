//! Each way a code can fail, and what the verifier says about it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{T0, World, claims, world};
use healthcode_token::cose::encode_claims;
use healthcode_token::{Colour, Issuer, Purpose, Signer, Token, Verifier, VerifyError};
use time::Duration;

fn verifier(w: &World) -> Verifier {
    Verifier::new(w.trust.clone())
}

fn kind(r: Result<healthcode_token::VerifiedCode, VerifyError>) -> &'static str {
    match r {
        Ok(_) => "valid",
        Err(e) => e.kind(),
    }
}

#[test]
fn a_fresh_code_verifies_with_everything_a_guard_needs() {
    let w = world();
    let c = claims(Colour::Yellow, T0);
    let text = w.active.issue(&c).unwrap().to_text();
    let code = verifier(&w)
        .verify_text(&text, T0 + Duration::minutes(1))
        .unwrap();
    assert_eq!(code.colour(), Colour::Yellow);
    assert_eq!(code.name_hint().unwrap().as_str(), "张*");
    assert_eq!(code.green_from(), Some(time::macros::date!(2026 - 12 - 06)));
    assert_eq!(code.expires_at(), T0 + Duration::minutes(5));
    assert_eq!(code.claims, c);
}

#[test]
fn expiry_and_clock_skew_boundaries() {
    let w = world();
    let v = verifier(&w);
    let text = w.active.issue(&claims(Colour::Green, T0)).unwrap().to_text();
    let exp = T0 + Duration::minutes(5);
    // Within the 60 s leeway after expiry: still accepted; at its end: expired.
    assert_eq!(kind(v.verify_text(&text, exp + Duration::seconds(59))), "valid");
    assert_eq!(kind(v.verify_text(&text, exp + Duration::seconds(60))), "expired");
    // A verifier whose clock is up to 60 s behind accepts; further behind says not yet valid.
    assert_eq!(kind(v.verify_text(&text, T0 - Duration::seconds(60))), "valid");
    assert_eq!(
        kind(v.verify_text(&text, T0 - Duration::seconds(61))),
        "not-yet-valid"
    );
    let strict = verifier(&w).with_leeway(Duration::ZERO);
    assert_eq!(kind(strict.verify_text(&text, exp)), "expired");
}

#[test]
fn unknown_key_is_named() {
    let w = world();
    let text = w.stranger.issue(&claims(Colour::Green, T0)).unwrap().to_text();
    let err = verifier(&w).verify_text(&text, T0).unwrap_err();
    assert!(matches!(err, VerifyError::UnknownKey { kid } if kid == w.stranger.kid()));
    assert!(err.to_string().contains(&w.stranger.kid().to_hex()));
}

#[test]
fn retired_key_is_refused_even_for_a_code_it_signed_while_valid() {
    let w = world();
    let text = w
        .retired
        .issue(&claims(Colour::Green, T0 - Duration::days(2)))
        .unwrap()
        .to_text();
    assert_eq!(kind(verifier(&w).verify_text(&text, T0)), "retired-key");
    // The same code, checked while the key was valid, was fine.
    assert_eq!(
        kind(verifier(&w).verify_text(&text, T0 - Duration::days(2))),
        "valid"
    );
}

#[test]
fn a_key_for_posters_cannot_sign_holder_codes() {
    let w = world();
    let text = w.poster_only.issue(&claims(Colour::Green, T0)).unwrap().to_text();
    assert_eq!(kind(verifier(&w).verify_text(&text, T0)), "key-not-for-purpose");
}

#[test]
fn other_kinds_of_signed_object_are_not_codes() {
    let w = world();
    // A venue poster signed by the active key: same key, same claims, other purpose.
    let poster = Signer::new(common::issuer(), common::key(1), Purpose::VenuePoster);
    let bytes = poster.sign_payload(&encode_claims(&claims(Colour::Green, T0)));
    let err = verifier(&w).verify(&Token::from_bytes(bytes), T0).unwrap_err();
    assert_eq!(
        err,
        VerifyError::WrongPurpose {
            found: Purpose::VenuePoster,
            expected: Purpose::HolderCode
        }
    );
    // The trust list itself, offered as a code.
    let list_bytes = data_encoding::BASE64URL_NOPAD
        .decode(w.trust.as_text().strip_prefix("HCTL1:").unwrap().as_bytes())
        .unwrap();
    assert_eq!(
        kind(verifier(&w).verify(&Token::from_bytes(list_bytes), T0)),
        "wrong-purpose"
    );
}

#[test]
fn a_code_claiming_another_region_is_refused() {
    let w = world();
    // The CN-GD key signs claims that say CN-ZJ: the signature is good, the issuer is not.
    let bytes = w
        .other_region
        .sign_payload(&encode_claims(&claims(Colour::Green, T0)));
    let err = verifier(&w).verify(&Token::from_bytes(bytes), T0).unwrap_err();
    assert_eq!(err.kind(), "wrong-issuer");
    // A genuine CN-GD code is accepted by default, refused by a verifier that only takes CN-ZJ.
    let mut gd = claims(Colour::Green, T0);
    gd.issuer = Issuer::parse("CN-GD").unwrap();
    let text = w.other_region.issue(&gd).unwrap().to_text();
    assert_eq!(kind(verifier(&w).verify_text(&text, T0)), "valid");
    let zj_only = verifier(&w).with_accepted_issuers([common::issuer()]);
    assert_eq!(kind(zj_only.verify_text(&text, T0)), "untrusted-issuer");
}

#[test]
fn a_signer_refuses_claims_of_another_issuer() {
    let w = world();
    let mut c = claims(Colour::Green, T0);
    c.issuer = Issuer::parse("CN-GD").unwrap();
    assert!(w.active.issue(&c).is_err());
}

#[test]
fn garbled_text_names_the_position() {
    let w = world();
    let v = verifier(&w);
    let text = w.active.issue(&claims(Colour::Green, T0)).unwrap().to_text();
    let mut lower = text.clone();
    lower.replace_range(10..11, "a");
    let err = v.verify_text(&lower, T0).unwrap_err();
    assert_eq!(
        err,
        VerifyError::BadCharacter {
            position: 10,
            character: 'a'
        }
    );
    assert_eq!(
        err.to_string(),
        "malformed at character 10: 'a' is not allowed in a code"
    );
    assert_eq!(kind(v.verify_text("", T0)), "empty");
    assert_eq!(kind(v.verify_text("HC2:ABC", T0)), "unknown-prefix");
    assert_eq!(kind(v.verify_text("https://example.org", T0)), "unknown-prefix");
}

#[test]
fn truncated_and_padded_bytes_name_the_byte() {
    let w = world();
    let v = verifier(&w);
    let token = w.active.issue(&claims(Colour::Green, T0)).unwrap();
    let bytes = token.as_bytes();
    let cut = Token::from_bytes(bytes[..bytes.len() - 10].to_vec());
    let err = v.verify(&cut, T0).unwrap_err();
    assert!(
        matches!(err, VerifyError::Malformed { offset, .. } if offset == bytes.len() - 10),
        "{err}"
    );
    let mut longer = bytes.to_vec();
    longer.push(0);
    let err = v.verify(&Token::from_bytes(longer), T0).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "malformed at byte {}: 1 bytes after the end of the object",
            bytes.len()
        )
    );
}

#[test]
fn an_altered_signature_or_payload_is_a_bad_signature() {
    let w = world();
    let token = w.active.issue(&claims(Colour::Red, T0)).unwrap();
    let mut bytes = token.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    assert_eq!(
        kind(verifier(&w).verify(&Token::from_bytes(bytes), T0)),
        "bad-signature"
    );
}

#[test]
fn text_survives_a_scanner_line_end() {
    let w = world();
    let text = w.active.issue(&claims(Colour::Green, T0)).unwrap().to_text();
    assert_eq!(
        kind(verifier(&w).verify_text(&format!("{text}\r\n"), T0)),
        "valid"
    );
}

#[test]
fn the_trust_list_rejects_the_wrong_root_and_rollbacks() {
    let w = world();
    let other_root = common::key(101);
    let err =
        healthcode_token::TrustList::from_text(w.trust.as_text(), &other_root.verifying_key()).unwrap_err();
    assert!(
        err.to_string().contains("not by the configured root key"),
        "{err}"
    );
    // A newer list replaces the copy; an older one is refused.
    let root_signer = Signer::new(common::issuer(), w.root.clone(), Purpose::TrustList);
    let keys: Vec<_> = w.trust.keys().cloned().collect();
    let older = healthcode_token::TrustList::sign(&root_signer, &keys, T0 - Duration::hours(1), T0).unwrap();
    let older = healthcode_token::TrustList::from_text(&older, &w.root.verifying_key()).unwrap();
    let mut held = w.trust.clone();
    assert!(matches!(
        held.update(older),
        Err(healthcode_token::TrustListError::Rollback { .. })
    ));
    assert_eq!(held.age(T0 + Duration::hours(3)), Duration::hours(3));
    assert!(!held.is_stale(T0 + Duration::hours(23)));
    assert!(held.is_stale(T0 + Duration::hours(25)));
}

#[test]
fn a_tampered_trust_list_is_refused() {
    let w = world();
    let text = w.trust.as_text();
    // Change one character in the middle of the base64url body.
    let mid = text.len() / 2;
    let c = text.as_bytes()[mid];
    let replacement = if c == b'A' { "B" } else { "A" };
    let mut tampered = text.to_owned();
    tampered.replace_range(mid..mid + 1, replacement);
    assert!(healthcode_token::TrustList::from_text(&tampered, &w.root.verifying_key()).is_err());
}
