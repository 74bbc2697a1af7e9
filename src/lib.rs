//! tickerd: live prices pushed to browsers with Server-Sent Events, as an SCGI backend behind
//! a web server or over its own HTTP/1.1 listener. One thread, one `mio` event loop.
//!
//! Where things live (the README's Design section has the same map):
//! - starting and the loop: [`start`] (a valid configuration to a running server),
//!   `server` (the event loop: polling, accepting, signals, the loop's own timers),
//!   `listeners` (where listening sockets come from), `net` (sockets), [`io`] (what the core
//!   asks of the operating system), `notify` (sd_notify);
//! - the core, without sockets: [`core`] (clients, feed, deadlines; carrying out requests,
//!   fan-out, timers), `conn` (one connection's state machine), `clients` (the registry),
//!   `deadlines`, `outbox` (shared pieces written with `writev`), `answers` (every canned
//!   answer and its counter), `response` (heads in the HTTP and CGI dialects), `metrics`;
//! - requests: [`scgi`] and [`http`] (pure parsers), [`request`] (what a request asks),
//!   [`route`] (which endpoint), `selection` (a client's symbol list), `publish` (who may
//!   publish, publish batches), [`protocol`] (the two dialects);
//! - the feed: `universe` (symbols, prices, ids, event bytes), `subscriptions` (who streams
//!   what), `feed` (what each client is due: the resume rule), `price`, [`symbol`],
//!   `listing` (the universe as an operator writes it), `sse` (event encoding);
//! - [`redis`]: the feed shared through Redis (wire, link, scripts, session, driver);
//! - `upgrade`: the live upgrade (orchestration, its record, the OS work);
//! - [`rights`]: who may see what (the entitlements file, tiers, each principal's rights);
//!   not used by the core yet;
//! - [`jwt`]: tokens (keys, verification, claims, where a token comes from), not used yet;
//! - [`config`]: the command line.
//!
//! Public only what the binary, the fuzz targets and the benches use; the rest is private
//! so that the compiler reports what nothing uses.

mod answers;
mod clients;
pub mod config;
mod conn;
pub mod core;
mod deadlines;
pub mod decimal;
#[cfg(test)]
mod fake;
mod feed;
pub mod http;
pub mod io;
pub mod jwt;
mod listeners;
pub mod listing;
mod metrics;
pub mod net;
mod notify;
mod outbox;
pub mod protocol;
pub mod publish;
mod rates;
pub mod redis;
pub mod request;
mod response;
pub mod rights;
pub mod route;
pub mod scgi;
pub mod schema;
mod selection;
mod server;
mod sse;
pub mod start;
mod subscriptions;
pub mod symbol;
mod universe;
mod upgrade;
mod walk;
