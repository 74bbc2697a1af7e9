//! The two dialects tickerd speaks: SCGI from a front-end, HTTP/1.1 from anyone. A
//! listener's protocol is its role (which flag it replaces, what its connections speak).

/// What a listener serves, and what its connections speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Scgi,
}

impl Protocol {
    /// Its name in flags, log lines, metrics and `LISTEN_FDNAMES`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Scgi => "scgi",
        }
    }

    /// The protocol of a listener named `name` (`scgi`, `http`).
    pub fn named(name: &str) -> Option<Protocol> {
        match name {
            "scgi" => Some(Protocol::Scgi),
            "http" => Some(Protocol::Http),
            _ => None,
        }
    }
}
