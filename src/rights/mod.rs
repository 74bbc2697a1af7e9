//! Who may see what (issue 18): symbol patterns, tiers, and each principal's rights resolved
//! into a plain [`Rights`] value. Pure: no sockets, no clock; nothing in the core uses it yet.
//!
//! - [`pattern`]: `AAPL`, `FX.*`, `*`;
//! - [`tier`]: `realtime` or a delay (`90s`, `15m`, `1h`), ordered best first;
//! - [`resolved`]: the resolved rights (grants), the best-tier rule, a stream's tier, caps,
//!   and the 401/403 decision.

pub mod pattern;
pub mod resolved;
pub mod tier;

pub use pattern::Pattern;
pub use resolved::{Grant, Refusal, Rights};
pub use tier::Tier;
