//! Wiring and transport: the data directory, `init`, the two listeners
//! (public HTTP and mTLS HTTPS), client-certificate identity and the JSON API.
//!
//! Handlers stay thin: identity → policy (domain) → one store operation →
//! response. Only `http::error` knows HTTP status codes.

pub mod backup;
pub mod bootstrap;
pub mod checkpoint;
pub mod config;
pub mod datadir;
pub mod http;
pub mod listen;
pub mod pseudonym;
pub mod relying;
pub mod renewal;
pub mod rollover;
pub mod run;
pub mod terms;
pub mod tls;

pub use bootstrap::{InitOptions, InitReport, init};
pub use config::ServeConfig;
pub use run::{Running, serve, start};
