//! `plumb-net`: the two small things every Plumb process that talks to a peer needs, kept in one
//! place so the agent library, the sidecar, the CLI and the collector do them the same way.
//!
//! - [`ClientTlsFiles`]: a CA to trust and, for mutual TLS, a client certificate and key, read
//!   from PEM files into a tonic client configuration.
//! - [`Backoff`]: an exponential backoff with jitter, checked when it is built, for every retry
//!   loop (the collector's ClickHouse writers, the sidecar's forwarder, the agent's span queue).
//!
//! It depends on tonic's client and nothing heavier, so the agent library stays small.

#![forbid(unsafe_code)]

mod backoff;
mod tls;

pub use backoff::{Backoff, Delays, InvalidBackoff};
pub use tls::{ClientTlsError, ClientTlsFiles};
