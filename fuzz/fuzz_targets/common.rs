// A fixed trust list and verifier shared by the targets, built once.
use std::sync::OnceLock;

use healthcode_token::keys::SigningKey;
use healthcode_token::{Issuer, KeyId, Purpose, Signer, TrustList, TrustedKey, Verifier};
use time::OffsetDateTime;

pub fn root() -> SigningKey {
    SigningKey::from_bytes(&[100; 32])
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_764_403_260).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let issuer = Issuer::parse("CN-ZJ").expect("issuer");
        let key = SigningKey::from_bytes(&[1; 32]);
        let keys = [TrustedKey {
            kid: KeyId::of(&key.verifying_key()),
            issuer: issuer.clone(),
            key: key.verifying_key(),
            purposes: vec![Purpose::HolderCode],
            not_before: OffsetDateTime::UNIX_EPOCH,
            not_after: OffsetDateTime::from_unix_timestamp(4_000_000_000).expect("time"),
        }];
        let signer = Signer::new(issuer, root(), Purpose::TrustList);
        let text = TrustList::sign(&signer, &keys, now(), now() + time::Duration::days(1)).expect("sign");
        Verifier::new(TrustList::from_text(&text, &root().verifying_key()).expect("list"))
    })
}
