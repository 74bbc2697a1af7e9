//! SCGI request parsing (the SCGI protocol, Neil Schemenauer, 2006). Pure and incremental:
//! feed it everything received so far; it answers `Partial` until the request is whole.
//!
//! ```text
//! request  = netstring body
//! netstring = length ":" headers ","
//! headers  = 1*(name NUL value NUL)   ; first header CONTENT_LENGTH, one header SCGI=1
//! ```

use std::fmt;

/// Parser outcome for input that is fine so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Status<T> {
    Complete(T),
    Partial,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Cap on the netstring's length (the header block).
    pub max_header: usize,
    /// Cap on CONTENT_LENGTH.
    pub max_body: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScgiError {
    /// The netstring length is missing, not decimal, or has a leading zero.
    BadLength,
    /// The netstring announces more header bytes than allowed.
    HeaderTooLarge,
    /// The header block is not followed by `,`.
    MissingComma,
    /// The block is not a sequence of NUL-terminated name/value pairs with non-empty names.
    MalformedHeaders,
    /// SCGI: "The first request header must have the name CONTENT_LENGTH".
    ContentLengthNotFirst,
    /// CONTENT_LENGTH is not a decimal number.
    BadContentLength,
    /// CONTENT_LENGTH appears twice.
    DuplicateContentLength,
    /// No `SCGI` header with value `1`.
    NotScgi,
    /// CONTENT_LENGTH is over the body cap; the value is the announced length.
    BodyTooLarge(u64),
}

impl fmt::Display for ScgiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScgiError::BadLength => f.write_str("netstring length is not a decimal number"),
            ScgiError::HeaderTooLarge => f.write_str("netstring header over the size cap"),
            ScgiError::MissingComma => f.write_str("netstring not terminated by ','"),
            ScgiError::MalformedHeaders => f.write_str("malformed header block"),
            ScgiError::ContentLengthNotFirst => f.write_str("first header is not CONTENT_LENGTH"),
            ScgiError::BadContentLength => f.write_str("CONTENT_LENGTH is not a number"),
            ScgiError::DuplicateContentLength => f.write_str("CONTENT_LENGTH given twice"),
            ScgiError::NotScgi => f.write_str("no SCGI=1 header"),
            ScgiError::BodyTooLarge(n) => write!(f, "body of {n} bytes over the cap"),
        }
    }
}

/// A whole request, borrowing from the input.
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The validated header block (pairs of NUL-terminated strings).
    block: &'a [u8],
    pub body: &'a [u8],
    /// Bytes of input the request took; anything after it is not part of it.
    pub len: usize,
}

impl<'a> Request<'a> {
    /// The headers in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
        let mut fields = self.block.split(|&b| b == 0);
        std::iter::from_fn(move || {
            let name = fields.next()?;
            let value = fields.next()?;
            // The block ends with NUL, so split yields a final empty piece: not a header.
            (!name.is_empty()).then_some((name, value))
        })
    }

    /// The first header with this name.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }
}

/// Longest decimal length worth reading before deciding the header is too large.
const MAX_LENGTH_DIGITS: usize = 10;

pub fn parse<'a>(input: &'a [u8], limits: &Limits) -> Result<Status<Request<'a>>, ScgiError> {
    // The length prefix. Checked byte by byte so that a huge announced length is refused
    // before its header arrives, and so that any prefix of valid input is Partial.
    let mut block_len: usize = 0;
    let mut colon = None;
    for (i, &b) in input.iter().enumerate() {
        match b {
            b':' if i > 0 => {
                colon = Some(i);
                break;
            }
            b'0'..=b'9' if i < MAX_LENGTH_DIGITS => {
                // Netstrings: no leading zeros ("0" alone could not hold CONTENT_LENGTH).
                if i == 1 && input[0] == b'0' {
                    return Err(ScgiError::BadLength);
                }
                block_len = block_len * 10 + usize::from(b - b'0');
                if block_len > limits.max_header {
                    return Err(ScgiError::HeaderTooLarge);
                }
            }
            _ => return Err(ScgiError::BadLength),
        }
    }
    let Some(colon) = colon else {
        return Ok(Status::Partial);
    };
    let block_start = colon + 1;
    let comma = block_start + block_len;
    if input.len() <= comma {
        return Ok(Status::Partial);
    }
    if input[comma] != b',' {
        return Err(ScgiError::MissingComma);
    }
    let block = &input[block_start..comma];
    let content_length = validate_headers(block)?;
    if content_length > limits.max_body as u64 {
        return Err(ScgiError::BodyTooLarge(content_length));
    }
    let body_start = comma + 1;
    let end = body_start + content_length as usize;
    if input.len() < end {
        return Ok(Status::Partial);
    }
    Ok(Status::Complete(Request {
        block,
        body: &input[body_start..end],
        len: end,
    }))
}

/// A header: name and value.
type Pair<'a> = (&'a [u8], &'a [u8]);

/// Checks the block's shape and returns CONTENT_LENGTH.
fn validate_headers(block: &[u8]) -> Result<u64, ScgiError> {
    if block.last() != Some(&0) {
        return Err(ScgiError::MalformedHeaders);
    }
    // Drop the final NUL so that splitting yields exactly the strings.
    let mut fields = block[..block.len() - 1].split(|&b| b == 0);
    let mut next_pair = || -> Option<Result<Pair, ScgiError>> {
        let name = fields.next()?;
        Some(match fields.next() {
            Some(value) if !name.is_empty() => Ok((name, value)),
            _ => Err(ScgiError::MalformedHeaders),
        })
    };
    let content_length = match next_pair() {
        Some(Ok((b"CONTENT_LENGTH", value))) => parse_decimal(value)?,
        Some(Ok(_)) => return Err(ScgiError::ContentLengthNotFirst),
        Some(Err(e)) => return Err(e),
        None => return Err(ScgiError::MalformedHeaders),
    };
    let mut scgi = false;
    while let Some(pair) = next_pair() {
        match pair? {
            (b"CONTENT_LENGTH", _) => return Err(ScgiError::DuplicateContentLength),
            (b"SCGI", value) => scgi = value == b"1",
            _ => {}
        }
    }
    if scgi {
        Ok(content_length)
    } else {
        Err(ScgiError::NotScgi)
    }
}

fn parse_decimal(value: &[u8]) -> Result<u64, ScgiError> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(ScgiError::BadContentLength);
    }
    // 19 digits always fit in a u64.
    Ok(value
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// Builds a request as a front-end would send it; for tests and benches.
pub fn encode(headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut block = Vec::new();
    let content_length = body.len().to_string();
    for (name, value) in [("CONTENT_LENGTH", content_length.as_str()), ("SCGI", "1")]
        .iter()
        .chain(headers)
    {
        block.extend_from_slice(name.as_bytes());
        block.push(0);
        block.extend_from_slice(value.as_bytes());
        block.push(0);
    }
    let mut out = format!("{}:", block.len()).into_bytes();
    out.extend_from_slice(&block);
    out.push(b',');
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_header: 16 * 1024,
        max_body: 1024,
    };

    fn raw(block: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = format!("{}:", block.len()).into_bytes();
        out.extend_from_slice(block);
        out.push(b',');
        out.extend_from_slice(body);
        out
    }

    /// The example from the SCGI specification.
    fn spec_example() -> Vec<u8> {
        raw(
            b"CONTENT_LENGTH\x0027\x00SCGI\x001\x00REQUEST_METHOD\x00POST\x00REQUEST_URI\x00/deepthought\x00",
            b"What is the answer to life?",
        )
    }

    #[test]
    fn parses_the_spec_example() {
        let input = spec_example();
        let Ok(Status::Complete(req)) = parse(&input, &LIMITS) else {
            panic!("not complete")
        };
        assert_eq!(req.body, b"What is the answer to life?");
        assert_eq!(req.len, input.len());
        assert_eq!(req.header("REQUEST_METHOD"), Some(&b"POST"[..]));
        assert_eq!(req.header("REQUEST_URI"), Some(&b"/deepthought"[..]));
        assert_eq!(req.header("MISSING"), None);
        assert_eq!(req.headers().count(), 4);
    }

    #[test]
    fn every_strict_prefix_is_partial_and_every_split_agrees() {
        let requests = [
            spec_example(),
            encode(&[("PATH_INFO", "/ticker"), ("HTTP_LAST_EVENT_ID", "")], b""),
            encode(&[("REQUEST_METHOD", "POST")], b"price=1.00"),
        ];
        for input in requests {
            let whole = parse(&input, &LIMITS).unwrap();
            assert!(matches!(whole, Status::Complete(_)));
            for cut in 0..input.len() {
                assert_eq!(
                    parse(&input[..cut], &LIMITS),
                    Ok(Status::Partial),
                    "prefix of {cut} bytes"
                );
            }
        }
    }

    #[test]
    fn trailing_bytes_are_not_part_of_the_request() {
        let mut input = encode(&[], b"ab");
        let len = input.len();
        input.extend_from_slice(b"extra");
        let Ok(Status::Complete(req)) = parse(&input, &LIMITS) else {
            panic!()
        };
        assert_eq!(req.body, b"ab");
        assert_eq!(req.len, len);
    }

    #[test]
    fn malformed_inputs_name_their_error() {
        use ScgiError::*;
        let cases: Vec<(&str, Vec<u8>, ScgiError)> = vec![
            ("not a digit", b"GET / HTTP/1.1\r\n".to_vec(), BadLength),
            ("colon first", b":abc,".to_vec(), BadLength),
            ("leading zero", b"012:".to_vec(), BadLength),
            ("negative", b"-5:".to_vec(), BadLength),
            ("huge length", b"1000000000000:".to_vec(), HeaderTooLarge),
            ("over the cap", b"16385:".to_vec(), HeaderTooLarge),
            ("many digits", b"00000000000000".to_vec(), BadLength),
            (
                "no comma",
                {
                    let mut v = encode(&[], b"");
                    let comma = v.iter().position(|&b| b == b',').unwrap();
                    v[comma] = b';';
                    v
                },
                MissingComma,
            ),
            (
                "unterminated value",
                raw(b"CONTENT_LENGTH\x000\x00SCGI\x001", b""),
                MalformedHeaders,
            ),
            (
                "odd string count",
                raw(b"CONTENT_LENGTH\x000\x00SCGI\x00", b""),
                MalformedHeaders,
            ),
            (
                "empty name",
                raw(b"CONTENT_LENGTH\x000\x00SCGI\x001\x00\x00x\x00", b""),
                MalformedHeaders,
            ),
            (
                "content length second",
                raw(b"SCGI\x001\x00CONTENT_LENGTH\x000\x00", b""),
                ContentLengthNotFirst,
            ),
            (
                "no content length",
                raw(b"SCGI\x001\x00", b""),
                ContentLengthNotFirst,
            ),
            ("empty block", raw(b"", b""), MalformedHeaders),
            (
                "non-numeric length",
                raw(b"CONTENT_LENGTH\x00abc\x00SCGI\x001\x00", b""),
                BadContentLength,
            ),
            (
                "empty length",
                raw(b"CONTENT_LENGTH\x00\x00SCGI\x001\x00", b""),
                BadContentLength,
            ),
            (
                "signed length",
                raw(b"CONTENT_LENGTH\x00+1\x00SCGI\x001\x00", b""),
                BadContentLength,
            ),
            (
                "20-digit length",
                raw(
                    b"CONTENT_LENGTH\x0099999999999999999999\x00SCGI\x001\x00",
                    b"",
                ),
                BadContentLength,
            ),
            (
                "duplicate length",
                raw(
                    b"CONTENT_LENGTH\x000\x00SCGI\x001\x00CONTENT_LENGTH\x000\x00",
                    b"",
                ),
                DuplicateContentLength,
            ),
            ("no SCGI", raw(b"CONTENT_LENGTH\x000\x00", b""), NotScgi),
            (
                "SCGI=2",
                raw(b"CONTENT_LENGTH\x000\x00SCGI\x002\x00", b""),
                NotScgi,
            ),
            (
                "body over cap",
                raw(b"CONTENT_LENGTH\x001025\x00SCGI\x001\x00", b""),
                BodyTooLarge(1025),
            ),
            (
                "10^12 body",
                raw(b"CONTENT_LENGTH\x001000000000000\x00SCGI\x001\x00", b""),
                BodyTooLarge(1_000_000_000_000),
            ),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse(&input, &LIMITS), Err(want), "{name}");
        }
    }

    #[test]
    fn errors_show_as_soon_as_the_bad_byte_arrives() {
        // A huge announced header is refused before any of it is sent.
        assert_eq!(parse(b"99999", &LIMITS), Err(ScgiError::HeaderTooLarge));
        assert_eq!(parse(b"G", &LIMITS), Err(ScgiError::BadLength));
        // A body over the cap is refused once the header is in, before the body.
        let header_only = raw(b"CONTENT_LENGTH\x002000\x00SCGI\x001\x00", b"");
        assert_eq!(
            parse(&header_only, &LIMITS),
            Err(ScgiError::BodyTooLarge(2000))
        );
    }

    #[test]
    fn nul_bytes_in_the_body_are_data() {
        let input = encode(&[], b"\x00\x00");
        let Ok(Status::Complete(req)) = parse(&input, &LIMITS) else {
            panic!()
        };
        assert_eq!(req.body, b"\x00\x00");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic sweep; the fuzz targets go further.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let alphabet = b"0123456789:,\x00CONTENT_LENGTHSCGI1";
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[(state >> (i % 60)) as usize % alphabet.len()])
                .collect();
            let _ = parse(&bytes, &LIMITS);
        }
    }
}

/// Property tests: any bytes, split anywhere, give the same
/// answer as in one piece or a clean error, and never a panic. The parser re-reads what has
/// arrived so far, so "split anywhere" means: over growing prefixes of any input, the answer
/// goes Partial, Partial, … and then one final answer that longer input never changes.
/// `check_prefixes`, `Answer` and `mutated` serve `http::props` too.
#[cfg(test)]
pub(crate) mod props {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    const SCGI: Limits = Limits {
        max_header: 512,
        max_body: 64,
    };

    /// A parse answer with nothing borrowed, so answers for different prefixes compare.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum Answer {
        Partial,
        Done(String),
        Error(String),
    }

    fn scgi_answer(input: &[u8]) -> Answer {
        match parse(input, &SCGI) {
            Ok(Status::Partial) => Answer::Partial,
            Ok(Status::Complete(req)) => {
                let headers: Vec<_> = req.headers().collect();
                Answer::Done(format!("{headers:?} {:?} {}", req.body, req.len))
            }
            Err(e) => Answer::Error(format!("{e:?}")),
        }
    }

    /// Over growing prefixes: Partial until some length, then the same final answer.
    pub(crate) fn check_prefixes(
        input: &[u8],
        answer: impl Fn(&[u8]) -> Answer,
    ) -> Result<(), TestCaseError> {
        let mut settled: Option<(usize, Answer)> = None;
        for end in 0..=input.len() {
            let a = answer(&input[..end]);
            match (&settled, a) {
                (None, Answer::Partial) => {}
                (None, a) => settled = Some((end, a)),
                (Some((at, first)), a) => prop_assert_eq!(
                    &a,
                    first,
                    "prefix {} answered {:?}, but prefix {} already settled",
                    end,
                    a,
                    at
                ),
            }
        }
        Ok(())
    }

    /// Bytes that look like SCGI often enough to get past the length prefix.
    fn scgi_like() -> impl Strategy<Value = Vec<u8>> {
        let token = prop_oneof![
            Just(b"CONTENT_LENGTH\0".to_vec()),
            Just(b"SCGI\x001\0".to_vec()),
            Just(b"0\0".to_vec()),
            Just(b"5\0".to_vec()),
            Just(b",".to_vec()),
            Just(b":".to_vec()),
            "[0-9]{1,3}".prop_map(String::into_bytes),
            vec(any::<u8>(), 0..4),
        ];
        vec(token, 0..12).prop_map(|parts| parts.concat())
    }

    /// A valid request with a few bytes changed and some bytes after it: the inputs closest
    /// to the edges of the grammar.
    pub(crate) fn mutated(valid: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
        let len = valid.len();
        (
            vec((0..len.max(1), any::<u8>()), 0..3),
            vec(any::<u8>(), 0..8),
        )
            .prop_map(move |(edits, tail)| {
                let mut v = valid.clone();
                for (at, byte) in edits {
                    if at < v.len() {
                        v[at] = byte;
                    }
                }
                v.extend_from_slice(&tail);
                v
            })
    }

    fn scgi_mutated() -> impl Strategy<Value = Vec<u8>> {
        (
            vec(("[A-Z_]{1,8}", "[ -~]{0,8}"), 0..4),
            vec(any::<u8>(), 0..8),
        )
            .prop_flat_map(|(headers, body)| {
                let pairs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                mutated(encode(&pairs, &body))
            })
    }

    proptest! {
        // Failures found before are kept beside this file (`scgi.proptest-regressions`),
        // not in a top-level folder, and run again first.
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: Some(Box::new(
                proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
            )),
            ..ProptestConfig::default()
        })]

        #[test]
        fn scgi_any_bytes_settle_once(
            input in prop_oneof![vec(any::<u8>(), 0..200), scgi_like(), scgi_mutated()]
        ) {
            check_prefixes(&input, scgi_answer)?;
        }

        /// A request as a front-end sends it comes back as sent, whole or byte by byte.
        #[test]
        fn scgi_valid_requests_round_trip(
            headers in vec(("[A-Z_]{1,12}", "[ -~]{0,20}"), 0..8),
            body in vec(any::<u8>(), 0..64),
            trailing in vec(any::<u8>(), 0..8),
        ) {
            let headers: Vec<(String, String)> = headers
                .into_iter()
                .filter(|(n, _)| n != "CONTENT_LENGTH" && n != "SCGI")
                .collect();
            let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let mut input = encode(&pairs, &body);
            let len = input.len();
            input.extend_from_slice(&trailing);
            let Ok(Status::Complete(req)) = parse(&input, &SCGI) else {
                return Err(TestCaseError::fail("a valid request did not parse"));
            };
            prop_assert_eq!(req.body, &body[..]);
            prop_assert_eq!(req.len, len);
            let got: Vec<(&[u8], &[u8])> = req.headers().skip(2).collect();
            let want: Vec<(&[u8], &[u8])> = pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
            prop_assert_eq!(got, want);
            for cut in 0..len {
                prop_assert_eq!(scgi_answer(&input[..cut]), Answer::Partial);
            }
        }
    }
}
