//! The network, below HTTP: the accept loops of both listeners with their
//! connection cap and timeouts (`listen`), and TLS on the mTLS listener —
//! the service's certificate, the live client-certificate check over the
//! responder's index and the open connections the responder can close
//! (`tls`). It knows no route, no handler and no registration authority.

pub mod listen;
pub mod tls;
