//! A real code fits the size budget: at most 220 characters and QR version 8 at level M, and it
//! survives rendering to PNG and reading back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use healthcode_qr::{Qr, decode_image};
use healthcode_token::keys::SigningKey;
use healthcode_token::{CodeClaims, Colour, HolderId, Issuer, NameHint, Purpose, Signer};
use time::macros::{date, datetime};

fn code(issuer: &str, subject_len: usize, hint: Option<&str>, colour: Colour) -> String {
    let issuer = Issuer::parse(issuer).unwrap();
    let signer = Signer::new(
        issuer.clone(),
        SigningKey::from_bytes(&[7; 32]),
        Purpose::HolderCode,
    );
    let t = datetime!(2026-11-29 08:00:00 UTC);
    let claims = CodeClaims {
        issuer,
        subject: HolderId::from_bytes(&vec![0xa5; subject_len]).unwrap(),
        issued_at: t,
        expires_at: t + time::Duration::minutes(5),
        colour,
        name_hint: hint.map(|h| NameHint::parse(h).unwrap()),
        green_from: (colour != Colour::Green).then_some(date!(2026 - 12 - 13)),
    };
    signer.issue(&claims).unwrap().to_text()
}

#[test]
fn a_code_with_a_two_character_hint_fits_version_8() {
    let text = code("CN-ZJ", 8, Some("张*"), Colour::Red);
    let qr = Qr::new(&text).unwrap();
    eprintln!(
        "budget code: {} characters, QR version {}",
        text.len(),
        qr.version()
    );
    assert!(text.len() <= 220, "{} characters", text.len());
    assert!(qr.version() <= 8, "version {}", qr.version());
    assert_eq!(qr.width(), 17 + 4 * qr.version() as usize);
}

#[test]
fn the_largest_code_still_fits_a_phone_screen() {
    // 16-byte subject, 16-character hint, 6-character issuer: the most the format allows.
    let text = code("GB-ENG", 16, Some("Alexandra*** M.Z"), Colour::Yellow);
    let qr = Qr::new(&text).unwrap();
    eprintln!(
        "largest code: {} characters, QR version {}",
        text.len(),
        qr.version()
    );
    assert!(qr.version() <= 10, "version {}", qr.version());
}

#[test]
fn a_rendered_code_reads_back_exactly() {
    for colour in [Colour::Green, Colour::Yellow, Colour::Red] {
        let text = code("CN-ZJ", 8, Some("S*** J."), colour);
        let png = Qr::new(&text).unwrap().to_png(3).unwrap();
        assert_eq!(decode_image(&png).unwrap(), text);
    }
}
