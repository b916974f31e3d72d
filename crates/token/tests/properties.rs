//! Property tests: round trips for arbitrary claims, every single-bit flip rejected, and keys that
//! must not verify.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{World, world};
use healthcode_token::claims::epoch_days_to_date;
use healthcode_token::{CodeClaims, Colour, HolderId, Issuer, NameHint, Token, Verifier};
use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

fn colour() -> impl Strategy<Value = Colour> {
    prop_oneof![Just(Colour::Green), Just(Colour::Yellow), Just(Colour::Red)]
}

fn name_hint() -> impl Strategy<Value = Option<NameHint>> {
    // A visible part in any script, then the mask; sometimes a trailing initial.
    let visible = prop::collection::vec(
        prop::char::range('A', 'Z')
            .boxed()
            .prop_union(prop::char::range('一', '龥').boxed()),
        0..4,
    );
    (
        visible,
        1usize..4,
        prop::option::of(prop::char::range('A', 'Z')),
        any::<bool>(),
    )
        .prop_map(|(v, stars, initial, present)| {
            if !present {
                return None;
            }
            let mut s: String = v.into_iter().collect();
            s.push_str(&"*".repeat(stars));
            if let Some(i) = initial {
                s.push(' ');
                s.push(i);
                s.push('.');
            }
            Some(NameHint::parse(&s).unwrap())
        })
}

prop_compose! {
    fn claims()(
        subject in prop::collection::vec(any::<u8>(), HolderId::MIN_LEN..=HolderId::MAX_LEN),
        // 2020-01-01 .. 2100-01-01
        issued in 1_577_836_800i64..4_102_444_800,
        ttl in 1i64..=CodeClaims::MAX_TTL_SECONDS,
        colour in colour(),
        name_hint in name_hint(),
        green_days in prop::option::of(18_000i64..60_000),
    ) -> CodeClaims {
        let issued_at = OffsetDateTime::from_unix_timestamp(issued).unwrap();
        CodeClaims {
            issuer: Issuer::parse("CN-ZJ").unwrap(),
            subject: HolderId::from_bytes(&subject).unwrap(),
            issued_at,
            expires_at: issued_at + Duration::seconds(ttl),
            colour,
            name_hint,
            green_from: if colour == Colour::Green { None } else { green_days.and_then(epoch_days_to_date) },
        }
    }
}

/// A verifier whose keys are valid whenever the generated claims were issued.
fn wide_world() -> (World, Verifier) {
    let w = world();
    let root = common::key(100);
    let zj = common::issuer();
    let from = OffsetDateTime::from_unix_timestamp(1_500_000_000).unwrap();
    let until = OffsetDateTime::from_unix_timestamp(4_200_000_000).unwrap();
    let keys = vec![
        common::trusted(
            &common::key(1),
            &zj,
            &[healthcode_token::Purpose::HolderCode],
            from,
            until,
        ),
        common::trusted(
            &common::key(3),
            &zj,
            &[healthcode_token::Purpose::VenuePoster],
            from,
            until,
        ),
    ];
    let signer = healthcode_token::Signer::new(zj, root.clone(), healthcode_token::Purpose::TrustList);
    let text = healthcode_token::TrustList::sign(&signer, &keys, from, until).unwrap();
    let list = healthcode_token::TrustList::from_text(&text, &root.verifying_key()).unwrap();
    (w, Verifier::new(list))
}

fn persistence() -> Option<Box<dyn proptest::test_runner::FailurePersistence>> {
    Some(Box::new(
        proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: persistence(), ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_gives_the_same_claims(c in claims()) {
        let (w, v) = wide_world();
        let text = w.active.issue(&c).unwrap().to_text();
        prop_assert!(text.starts_with("HC1:"));
        prop_assert!(text["HC1:".len()..].bytes().all(|b| b.is_ascii_uppercase() || b"234567".contains(&b)));
        let code = v.verify_text(&text, c.issued_at).unwrap();
        prop_assert_eq!(code.claims, c);
    }

    #[test]
    fn codes_from_unknown_retired_or_wrong_purpose_keys_are_rejected(c in claims()) {
        let (w, v) = wide_world();
        let t = c.issued_at;
        let unknown = w.stranger.issue(&c).unwrap().to_text();
        prop_assert_eq!(v.verify_text(&unknown, t).unwrap_err().kind(), "unknown-key");
        let poster_key = w.poster_only.issue(&c).unwrap().to_text();
        prop_assert_eq!(v.verify_text(&poster_key, t).unwrap_err().kind(), "key-not-for-purpose");
        let poster = healthcode_token::Signer::new(common::issuer(), common::key(1), healthcode_token::Purpose::VenuePoster);
        let wrong = Token::from_bytes(poster.sign_payload(&healthcode_token::cose::encode_claims(&c)));
        prop_assert_eq!(v.verify(&wrong, t).unwrap_err().kind(), "wrong-purpose");
        // The fixture's key 2 ended a day before T0: whatever it signed fails after that.
        let retired = w.retired.issue(&c).unwrap().to_text();
        let fixed = Verifier::new(w.trust.clone());
        prop_assert_eq!(fixed.verify_text(&retired, common::T0).unwrap_err().kind(), "retired-key");
    }
}

proptest! {
    // Each case flips all of a token's ~1,000 bits and ~1,700 text bits.
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: persistence(), ..ProptestConfig::default() })]

    #[test]
    fn every_single_bit_flip_is_rejected(c in claims()) {
        let (w, v) = wide_world();
        let token = w.active.issue(&c).unwrap();
        let t = c.issued_at;
        prop_assert!(v.verify(&token, t).is_ok());
        let bytes = token.as_bytes();
        for i in 0..bytes.len() * 8 {
            let mut flipped = bytes.to_vec();
            flipped[i / 8] ^= 1 << (i % 8);
            prop_assert!(v.verify(&Token::from_bytes(flipped), t).is_err(), "byte bit {} accepted", i);
        }
        let text = token.to_text().into_bytes();
        for i in 0..text.len() * 8 {
            let mut flipped = text.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            let Ok(s) = String::from_utf8(flipped) else { continue };
            prop_assert!(v.verify_text(&s, t).is_err(), "text bit {} accepted: {}", i, s);
        }
    }
}
