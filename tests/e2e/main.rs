//! The end-to-end tests: the real tickerd binary, started on free ports, over real sockets,
//! behind the real lighttpd, nginx and Apache, beside a real redis-server, driven by a real
//! headless Chromium; and the installed Debian package (`package`, ignored unless asked for).
//!
//! One test crate, one module per concern, sharing [`support`]: the helpers compile and link
//! once (matklad, "Delete Cargo Integration Tests"). A new concern is a new module here, not
//! a new file in `tests/` (which would be one more binary linking everything again).
//!
//! `cargo test --test e2e -- symbols::` runs one module; `cargo test --test e2e -- --list` lists
//! every test.

mod support;

mod apache;
mod auth;
mod balance;
mod browser;
mod cli;
mod hostile;
mod http2;
mod keep_alive;
mod lighttpd;
mod lighttpd_spawn;
mod nginx;
mod nginx_http2;
mod package;
mod records;
mod redis;
mod service;
mod symbols;
mod systemd;
mod upgrade;
