//! Publish bodies as text (a bare price, `SYM=PRICE`, `SYM field=value …` lines) from any
//! bytes; `publish_check.rs` says what must hold.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tickerd::publish::BodyFormat;

mod publish_check;

fuzz_target!(|data: &[u8]| publish_check::check(data, BodyFormat::Text));
