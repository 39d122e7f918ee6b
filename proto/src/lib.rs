//! Plumb's own protobuf API (`plumb.v1`), compiled from `proto/plumb/v1/*.proto` by `build.rs`.
//!
//! The messages also derive serde, so the HTTP/JSON form of the query API and the CLI's `--json`
//! output use the same field names as the gRPC API.

/// `plumb.v1`: the query API.
pub mod v1 {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("plumb.v1");
}
