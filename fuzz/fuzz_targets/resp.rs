//! Bytes from a Redis that speaks broken RESP: measured, decoded and read as each reply
//! tickerd expects (a load, stream entries, a publish's id), fed in arbitrary chunks. Never a
//! panic or a stack overflow; an error is a reconnect.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tickerd::redis::replies;
use tickerd::redis::wire;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let chunk = usize::from(chunk % 64) + 1;
    let mut buf = Vec::new();
    for bytes in rest.chunks(chunk) {
        buf.extend_from_slice(bytes);
        loop {
            match wire::take_reply(&mut buf, 1 << 20) {
                Ok(Some(frame)) => {
                    let _ = replies::loaded(&frame);
                    let _ = replies::entries(&frame);
                    let _ = replies::published(&frame);
                    let _ = replies::seeded(&frame);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
