//! Keys, trust lists and claims for tests, all from fixed seeds so results repeat.
#![allow(dead_code)]

use healthcode_token::keys::SigningKey;
use healthcode_token::{
    CodeClaims, Colour, HolderId, Issuer, NameHint, Purpose, Signer, TrustList, TrustedKey,
};
use time::{Duration, OffsetDateTime, macros::datetime};

/// The time the fixture's trust list is signed; codes are issued around it.
pub const T0: OffsetDateTime = datetime!(2026-11-29 08:00:00 UTC);

pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

pub fn issuer() -> Issuer {
    Issuer::parse("CN-ZJ").unwrap()
}

pub fn trusted(
    key: &SigningKey,
    issuer: &Issuer,
    purposes: &[Purpose],
    from: OffsetDateTime,
    until: OffsetDateTime,
) -> TrustedKey {
    TrustedKey {
        kid: healthcode_token::KeyId::of(&key.verifying_key()),
        issuer: issuer.clone(),
        key: key.verifying_key(),
        purposes: purposes.to_vec(),
        not_before: from,
        not_after: until,
    }
}

/// A world with one root, an active key (seed 1), a retired key (seed 2, ended a day before T0),
/// a key for venue posters only (seed 3), a key of another region (seed 4, CN-GD); seed 9 is
/// in no list.
pub struct World {
    pub root: SigningKey,
    pub trust: TrustList,
    pub active: Signer,
    pub retired: Signer,
    pub poster_only: Signer,
    pub other_region: Signer,
    pub stranger: Signer,
}

pub fn world() -> World {
    let root = key(100);
    let zj = issuer();
    let gd = Issuer::parse("CN-GD").unwrap();
    let year = Duration::days(365);
    let keys = vec![
        trusted(
            &key(1),
            &zj,
            &[Purpose::HolderCode],
            T0 - Duration::days(30),
            T0 + year,
        ),
        trusted(
            &key(2),
            &zj,
            &[Purpose::HolderCode],
            T0 - year,
            T0 - Duration::days(1),
        ),
        trusted(
            &key(3),
            &zj,
            &[Purpose::VenuePoster],
            T0 - Duration::days(30),
            T0 + year,
        ),
        trusted(
            &key(4),
            &gd,
            &[Purpose::HolderCode],
            T0 - Duration::days(30),
            T0 + year,
        ),
    ];
    let root_signer = Signer::new(zj.clone(), root.clone(), Purpose::TrustList);
    let text = TrustList::sign(&root_signer, &keys, T0, T0 + Duration::days(1)).unwrap();
    let trust = TrustList::from_text(&text, &root.verifying_key()).unwrap();
    World {
        root,
        trust,
        active: Signer::new(zj.clone(), key(1), Purpose::HolderCode),
        retired: Signer::new(zj.clone(), key(2), Purpose::HolderCode),
        poster_only: Signer::new(zj.clone(), key(3), Purpose::HolderCode),
        other_region: Signer::new(gd, key(4), Purpose::HolderCode),
        stranger: Signer::new(zj, key(9), Purpose::HolderCode),
    }
}

pub fn claims(colour: Colour, issued_at: OffsetDateTime) -> CodeClaims {
    CodeClaims {
        issuer: issuer(),
        subject: HolderId::from_hex("0123456789abcdef").unwrap(),
        issued_at,
        expires_at: issued_at + Duration::minutes(5),
        colour,
        name_hint: Some(NameHint::parse("张*").unwrap()),
        green_from: match colour {
            Colour::Green => None,
            _ => Some(time::macros::date!(2026 - 12 - 06)),
        },
    }
}
