//! Offline administration, the commands the CLI runs beside `serve`: `init`
//! (a new data directory and database), the issuing CA's rollover, and
//! backup and restore (with the start-up comparison of the database with
//! the newest kept CRL, so that a restore never brings a revoked certificate
//! back). It works on the data directory and the store, never on HTTP or
//! the listeners.

pub mod backup;
pub mod init;
pub mod rollover;
