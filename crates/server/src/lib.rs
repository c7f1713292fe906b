//! Wiring and transport: the data directory, `init`, the two listeners
//! (public HTTP and mTLS HTTPS), client-certificate identity and the JSON API.
//!
//! Handlers stay thin: identity → policy (domain) → one store operation →
//! response. Only `http::error` knows HTTP status codes.

pub mod admin;
pub mod app;
pub mod checkpoint;
pub mod config;
pub mod datadir;
pub mod http;
pub mod net;
pub mod pseudonym;
pub mod terms;

pub use admin::init::{InitOptions, InitReport, init};
pub use app::{Running, serve, start};
pub use config::ServeConfig;
