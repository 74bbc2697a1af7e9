//! Publish bodies as JSON lines (one object a line, values as JSON strings or numbers) from
//! any bytes; `publish_check.rs` says what must hold.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tickerd::publish::BodyFormat;

mod publish_check;

fuzz_target!(|data: &[u8]| publish_check::check(data, BodyFormat::JsonLines));
