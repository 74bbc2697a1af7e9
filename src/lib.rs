//! tickerd: live prices pushed to browsers with Server-Sent Events, as an SCGI backend behind
//! a web server or over its own HTTP/1.1 listener. One thread, one `mio` event loop.
//!
//! Modules, one concern each: [`config`] (command line), [`listing`] (the universe as an
//! operator writes it), [`symbol`] (names), [`scgi`] and [`http`] (pure request parsers),
//! [`request`] (what a request asks, CGI routing), [`route`] (which endpoint),
//! [`selection`] (a client's symbol list), [`publish`] (who may publish, publish batches),
//! [`price`] (cents, the random walk's step), [`universe`] (symbols, prices, ids, event
//! bytes), [`subscriptions`] (who streams what), [`feed`] (what each client is due),
//! [`sse`] (event encoding), [`response`] (heads in HTTP and CGI dialects), [`outbox`]
//! (shared output pieces, written with `writev`), [`conn`] (one connection's state
//! machine), [`clients`] (the registry), [`deadlines`] (timeouts), [`metrics`], [`net`]
//! (sockets) and [`server`] (the event loop).

pub mod clients;
pub mod config;
pub mod conn;
pub mod deadlines;
pub mod feed;
pub mod handover;
pub mod http;
pub mod inherit;
pub mod listing;
pub mod metrics;
pub mod net;
pub mod notify;
pub mod outbox;
pub mod price;
pub mod publish;
pub mod redis_feed;
pub mod redis_link;
pub mod request;
pub mod resp;
pub mod response;
pub mod route;
pub mod scgi;
pub mod selection;
pub mod server;
pub mod sse;
pub mod subscriptions;
pub mod symbol;
pub mod universe;
