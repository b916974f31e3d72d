//! COSE bytes → verified claims, skipping the Base32 layer so the fuzzer reaches the CBOR parser
//! directly; also the claims decoder on its own, which normally only sees signed payloads.
#![no_main]

mod common;

use healthcode_token::Token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = common::verifier().verify(&Token::from_bytes(data.to_vec()), common::now());
    let _ = healthcode_token::cose::decode_claims(data);
});
