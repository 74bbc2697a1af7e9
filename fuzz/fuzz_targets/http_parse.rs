//! The HTTP request parser on any bytes: never a panic, and a whole request stands alone.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tickerd::http::{parse, Limits};
use tickerd::scgi::Status;

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_head: 4096, max_body: 1024 };
    let whole = parse(data, &limits);
    if let Ok(Status::Complete((req, len))) = &whole {
        assert!(*len <= data.len());
        assert_eq!(parse(&data[..*len], &limits), whole);
        let rules = tickerd::route::Rules {
            publish_token: Some("token".into()),
            max_symbols: 8,
            trust_remote_user: false,
            tokens: true,
            auth_cookie: Some("t".into()),
        };
        let _ = tickerd::route::route(req, &rules);
        let _ = req.last_event_id();
    }
});
