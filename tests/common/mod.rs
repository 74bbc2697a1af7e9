//! Not a test: `benches/soak.rs` includes this file by path (`#[path =
//! "../tests/common/mod.rs"] mod common;`) for the helpers it shares with the end-to-end
//! tests, which live in `tests/e2e/support/`. The bench uses a few of them, so what it leaves
//! unused is allowed here, and only here: the e2e crate reports its own dead code. Once the
//! bench includes `tests/e2e/support/mod.rs` itself, this file can go.

#[allow(dead_code, unused_imports)]
#[path = "../e2e/support/mod.rs"]
mod support;

pub use support::{http_stream, reset, scgi_get, wait_until, Tickerd};

impl Tickerd {
    /// Descriptors the process has open, from /proc (the soak's leak check; no test uses it).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, |d| d.count())
    }
}
