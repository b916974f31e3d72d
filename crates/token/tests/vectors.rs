//! The committed test vectors in testdata/vectors/vectors.json: every one verifies to its stated
//! verdict, and regenerating them from their seeds gives the same file (so a change to the format
//! cannot slip in unnoticed). `HEALTHCODE_UPDATE_VECTORS=1 cargo test --test vectors` rewrites it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use common::{T0, claims, world};
use healthcode_token::cose::encode_claims;
use healthcode_token::keys::public_key_from_text;
use healthcode_token::{Colour, HolderId, Issuer, NameHint, Purpose, Signer, Token, TrustList, Verifier};
use serde_json::{Value, json};
use time::Duration;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/vectors.json")
}

fn valid(name: &str, text: String, at: time::OffsetDateTime) -> Value {
    let w = world();
    let code = Verifier::new(w.trust.clone()).verify_text(&text, at).unwrap();
    let c = &code.claims;
    json!({
        "name": name,
        "token": text,
        "verify_at": at.unix_timestamp(),
        "expected": {
            "valid": true,
            "issuer": c.issuer.as_str(),
            "subject": c.subject.to_hex(),
            "issued_at": c.issued_at.unix_timestamp(),
            "expires_at": c.expires_at.unix_timestamp(),
            "colour": c.colour.as_str(),
            "name_hint": c.name_hint.as_ref().map(|h| h.as_str()),
            "green_from": c.green_from.map(|d| d.to_string()),
            "kid": code.kid.to_hex(),
        }
    })
}

fn invalid(name: &str, text: String, at: time::OffsetDateTime, error: &str) -> Value {
    json!({ "name": name, "token": text, "verify_at": at.unix_timestamp(), "expected": { "valid": false, "error": error } })
}

fn text_of(bytes: &[u8]) -> String {
    Token::from_bytes(bytes.to_vec()).to_text()
}

fn generate() -> Value {
    let w = world();
    let at = T0 + Duration::minutes(1);
    let mut v = Vec::new();

    let mut green = claims(Colour::Green, T0);
    green.subject = HolderId::from_hex("00112233445566778899aabbccddeeff").unwrap();
    green.name_hint = Some(NameHint::parse("S*** J.").unwrap());
    v.push(valid(
        "valid-green",
        w.active.issue(&green).unwrap().to_text(),
        at,
    ));
    let yellow = w.active.issue(&claims(Colour::Yellow, T0)).unwrap();
    v.push(valid("valid-yellow", yellow.to_text(), at));
    let mut red = claims(Colour::Red, T0);
    red.name_hint = None;
    red.green_from = None;
    v.push(valid(
        "valid-red-open-ended",
        w.active.issue(&red).unwrap().to_text(),
        at,
    ));
    let mut gd = claims(Colour::Green, T0);
    gd.issuer = Issuer::parse("CN-GD").unwrap();
    v.push(valid(
        "valid-other-region",
        w.other_region.issue(&gd).unwrap().to_text(),
        at,
    ));

    v.push(invalid(
        "expired",
        yellow.to_text(),
        T0 + Duration::minutes(6),
        "expired",
    ));
    v.push(invalid(
        "issued-in-the-future",
        yellow.to_text(),
        T0 - Duration::minutes(2),
        "not-yet-valid",
    ));
    let mut sig = yellow.as_bytes().to_vec();
    let last = sig.len() - 1;
    sig[last] ^= 0x80;
    v.push(invalid("signature-altered", text_of(&sig), at, "bad-signature"));
    // Yellow's colour claim is the byte 0x01 after the key 0x21 (-2); make it green.
    let mut lighter = yellow.as_bytes().to_vec();
    let pos = lighter.windows(2).position(|p| p == [0x21, 0x01]).unwrap();
    lighter[pos + 1] = 0x00;
    v.push(invalid(
        "colour-changed-to-green",
        text_of(&lighter),
        at,
        "bad-signature",
    ));
    v.push(invalid(
        "unknown-key",
        w.stranger.issue(&claims(Colour::Green, T0)).unwrap().to_text(),
        at,
        "unknown-key",
    ));
    let old = w
        .retired
        .issue(&claims(Colour::Green, T0 - Duration::days(2)))
        .unwrap();
    v.push(invalid("retired-key", old.to_text(), at, "retired-key"));
    v.push(invalid(
        "key-not-for-holder-codes",
        w.poster_only.issue(&claims(Colour::Green, T0)).unwrap().to_text(),
        at,
        "key-not-for-purpose",
    ));
    let poster = Signer::new(common::issuer(), common::key(1), Purpose::VenuePoster);
    let poster_bytes = poster.sign_payload(&encode_claims(&claims(Colour::Green, T0)));
    v.push(invalid(
        "venue-poster-not-a-code",
        text_of(&poster_bytes),
        at,
        "wrong-purpose",
    ));
    let wrong_iss = w
        .other_region
        .sign_payload(&encode_claims(&claims(Colour::Green, T0)));
    v.push(invalid(
        "issuer-not-the-keys",
        text_of(&wrong_iss),
        at,
        "wrong-issuer",
    ));
    let mut bad = claims(Colour::Green, T0);
    bad.green_from = Some(time::macros::date!(2026 - 12 - 06));
    let bad_bytes = w.active.sign_payload(&encode_claims(&bad));
    v.push(invalid(
        "green-with-green-from",
        text_of(&bad_bytes),
        at,
        "bad-claims",
    ));
    let y = yellow.as_bytes();
    v.push(invalid("truncated", text_of(&y[..y.len() - 20]), at, "malformed"));
    let mut trailing = y.to_vec();
    trailing.push(0xf6);
    v.push(invalid("trailing-byte", text_of(&trailing), at, "malformed"));
    let mut tagged = vec![0xd2];
    tagged.extend_from_slice(y);
    v.push(invalid("tagged-cose-sign1", text_of(&tagged), at, "malformed"));
    v.push(invalid(
        "lower-case",
        yellow.to_text().to_lowercase().replacen("hc1:", "HC1:", 1),
        at,
        "bad-character",
    ));
    v.push(invalid(
        "unknown-version",
        yellow.to_text().replacen("HC1:", "HC2:", 1),
        at,
        "unknown-prefix",
    ));

    json!({
        "description": "healthcode HC1 test vectors. Each token is verified at verify_at (seconds since the epoch) against trust_list, whose signature is checked with root_public_key. The private keys are test keys: the 32-byte Ed25519 seed of key N is the byte N repeated.",
        "root_public_key": healthcode_token::keys::public_key_to_text(&w.root.verifying_key()),
        "root_seed_byte": 100,
        "trust_list": w.trust.as_text(),
        "keys": [
            { "seed_byte": 1, "kid": w.active.kid().to_hex(), "issuer": "CN-ZJ", "note": "active holder-code key" },
            { "seed_byte": 2, "kid": w.retired.kid().to_hex(), "issuer": "CN-ZJ", "note": "retired the day before the list" },
            { "seed_byte": 3, "kid": w.poster_only.kid().to_hex(), "issuer": "CN-ZJ", "note": "venue posters only" },
            { "seed_byte": 4, "kid": w.other_region.kid().to_hex(), "issuer": "CN-GD", "note": "another region" },
            { "seed_byte": 9, "kid": w.stranger.kid().to_hex(), "issuer": "CN-ZJ", "note": "in no trust list" },
        ],
        "vectors": v,
    })
}

#[test]
fn committed_vectors_are_what_the_code_generates() {
    let generated = serde_json::to_string_pretty(&generate()).unwrap() + "\n";
    if std::env::var_os("HEALTHCODE_UPDATE_VECTORS").is_some() {
        std::fs::create_dir_all(path().parent().unwrap()).unwrap();
        std::fs::write(path(), &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path()).expect("testdata/vectors/vectors.json is missing");
    assert!(
        committed == generated,
        "vectors.json differs from what the code generates; rerun with HEALTHCODE_UPDATE_VECTORS=1 if the format change is intended"
    );
}

#[test]
fn every_committed_vector_gets_its_verdict() {
    let file: Value = serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap();
    let root = public_key_from_text(file["root_public_key"].as_str().unwrap()).unwrap();
    let list = TrustList::from_text(file["trust_list"].as_str().unwrap(), &root).unwrap();
    let verifier = Verifier::new(list);
    let vectors = file["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 19);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let at = time::OffsetDateTime::from_unix_timestamp(v["verify_at"].as_i64().unwrap()).unwrap();
        let result = verifier.verify_text(v["token"].as_str().unwrap(), at);
        let expected = &v["expected"];
        if expected["valid"].as_bool().unwrap() {
            let code = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            let c = &code.claims;
            assert_eq!(expected["colour"], c.colour.as_str(), "{name}");
            assert_eq!(expected["issuer"], c.issuer.as_str(), "{name}");
            assert_eq!(expected["subject"], c.subject.to_hex(), "{name}");
            assert_eq!(expected["expires_at"], c.expires_at.unix_timestamp(), "{name}");
            assert_eq!(
                expected["name_hint"].as_str(),
                c.name_hint.as_ref().map(|h| h.as_str()),
                "{name}"
            );
            assert_eq!(
                expected["green_from"].as_str().map(str::to_owned),
                c.green_from.map(|d| d.to_string()),
                "{name}"
            );
        } else {
            let err = result.err().unwrap_or_else(|| panic!("{name} verified"));
            assert_eq!(expected["error"], err.kind(), "{name}: {err}");
        }
    }
}
