//! Issue and verify costs of a holder code against the raw Ed25519 operations they are built on,
//! measured in one run so the ratios can be read on a noisy machine.
//!
//! cargo bench -p healthcode-token --bench token

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signer as _, SigningKey};
use healthcode_token::cose::Unverified;
use healthcode_token::{
    CodeClaims, Colour, HolderId, Issuer, KeyId, NameHint, Purpose, Signer, TrustList, TrustedKey, Verifier,
};
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};

fn setup() -> (Signer, Verifier, CodeClaims, OffsetDateTime) {
    let issuer = Issuer::parse("CN-ZJ").unwrap();
    let key = SigningKey::from_bytes(&[1; 32]);
    let root = SigningKey::from_bytes(&[100; 32]);
    let t = datetime!(2026-11-29 08:00:00 UTC);
    let keys = [TrustedKey {
        kid: KeyId::of(&key.verifying_key()),
        issuer: issuer.clone(),
        key: key.verifying_key(),
        purposes: vec![Purpose::HolderCode],
        not_before: t - Duration::days(1),
        not_after: t + Duration::days(365),
    }];
    let root_signer = Signer::new(issuer.clone(), root.clone(), Purpose::TrustList);
    let list = TrustList::sign(&root_signer, &keys, t, t + Duration::days(1)).unwrap();
    let verifier = Verifier::new(TrustList::from_text(&list, &root.verifying_key()).unwrap());
    let claims = CodeClaims {
        issuer: issuer.clone(),
        subject: HolderId::from_hex("0123456789abcdef").unwrap(),
        issued_at: t,
        expires_at: t + Duration::minutes(5),
        colour: Colour::Yellow,
        name_hint: Some(NameHint::parse("张*").unwrap()),
        green_from: Some(date!(2026 - 12 - 06)),
    };
    (
        Signer::new(issuer, key, Purpose::HolderCode),
        verifier,
        claims,
        t + Duration::minutes(1),
    )
}

fn bench(c: &mut Criterion) {
    let (signer, verifier, claims, now) = setup();
    // 64 codes for 64 holders, so that variable-time verification is averaged over many
    // signatures; the raw operations sign and verify exactly the bytes the codes sign.
    let all_claims: Vec<CodeClaims> = (0..64u8)
        .map(|i| CodeClaims {
            subject: HolderId::from_bytes(&[i; 8]).unwrap(),
            ..claims.clone()
        })
        .collect();
    let tokens: Vec<_> = all_claims.iter().map(|c| signer.issue(c).unwrap()).collect();
    let texts: Vec<String> = tokens.iter().map(|t| t.to_text()).collect();
    let tbs: Vec<Vec<u8>> = tokens
        .iter()
        .map(|t| Unverified::parse(t.as_bytes()).unwrap().to_be_signed())
        .collect();
    let raw_key = SigningKey::from_bytes(&[1; 32]);
    let sigs: Vec<_> = tbs.iter().map(|m| raw_key.sign(m)).collect();
    let vk = raw_key.verifying_key();

    let mut g = c.benchmark_group("code");
    let mut i = 0usize;
    g.bench_function("raw_ed25519_sign", |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            raw_key.sign(black_box(&tbs[i]))
        })
    });
    g.bench_function("token_issue_to_text", |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            signer.issue(black_box(&all_claims[i])).unwrap().to_text()
        })
    });
    g.bench_function("raw_ed25519_verify_strict", |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            vk.verify_strict(black_box(&tbs[i]), black_box(&sigs[i])).unwrap()
        })
    });
    g.bench_function("token_verify_from_text", |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            verifier.verify_text(black_box(&texts[i]), now).unwrap()
        })
    });
    g.finish();
    eprintln!(
        "token: {} bytes, {} characters of text (prefix included), signed bytes {}",
        tokens[0].as_bytes().len(),
        texts[0].len(),
        tbs[0].len()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
