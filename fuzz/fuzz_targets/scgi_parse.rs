//! The SCGI parser on any bytes: never a panic, and once an answer settles it stays.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tickerd::scgi::{parse, Limits, Status};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_header: 4096, max_body: 1024 };
    let whole = parse(data, &limits);
    if let Ok(Status::Complete(req)) = &whole {
        assert!(req.len <= data.len());
        // The request stands alone: cut right after it, the answer is the same.
        assert_eq!(parse(&data[..req.len], &limits), whole);
        let _ = tickerd::request::Request::from_scgi(req);
    }
});
