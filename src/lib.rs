//! tickerd: live prices pushed to browsers with Server-Sent Events, as an SCGI backend behind
//! a web server or over its own HTTP/1.1 listener. One thread, one `mio` event loop.
//!
//! Modules, one concern each: [`config`] (command line), [`scgi`] and [`http`] (pure request
//! parsers), [`request`] (what a request asks, CGI routing), [`route`] (which endpoint),
//! [`publish`] (who may publish), [`price`] (the price source and current event), [`sse`]
//! (event encoding), [`response`] (heads in HTTP and CGI dialects), [`conn`] (one
//! connection's state machine), [`clients`] (the registry), [`deadlines`] (timeouts),
//! [`metrics`], [`net`] (sockets) and [`server`] (the event loop).

pub mod clients;
pub mod config;
pub mod conn;
pub mod deadlines;
pub mod http;
pub mod metrics;
pub mod net;
pub mod price;
pub mod publish;
pub mod request;
pub mod response;
pub mod route;
pub mod scgi;
pub mod server;
pub mod sse;
