//! Trust-list text → checked list: what a scanner does with a list it downloads.
#![no_main]

mod common;

use healthcode_token::TrustList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = TrustList::from_text(text, &common::root().verifying_key());
    }
});
