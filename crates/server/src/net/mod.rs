//! The network, below HTTP: the accept loops of both listeners (`listen`),
//! the rules for holding a connection (`governor`), the PROXY protocol header a
//! trusted proxy sends before TLS (`proxy`), and TLS on the mTLS listener —
//! the service's certificate, the live client-certificate check over the
//! responder's index and the open connections the responder can close
//! (`tls`). It knows no route, no handler and no registration authority.

pub(crate) mod governor;
pub mod listen;
pub(crate) mod proxy;
pub mod tls;
