//! dist-lock: a distributed lock manager over Redis (one server, Sentinel,
//! Cluster, or a Redlock quorum of independent masters).
//!
//! The core (every module but `binding`) knows nothing of Node.js: it takes,
//! extends and releases locks with plain `redis` and `tokio` types, and is
//! unit-tested with `cargo test` against a real `redis-server`. The `binding`
//! module, behind the default `node` feature, is the only one that uses napi.
#![deny(clippy::all)]
#![deny(clippy::too_many_lines)]

pub mod backend;
pub mod cleanup;
pub mod clock;
pub mod completion;
pub mod connection;
pub mod error;
pub mod eviction;
pub mod fencing;
pub(crate) mod held;
pub mod keepalive;
pub mod lock;
pub mod manager;
pub mod notifier;
pub mod options;
pub mod quorum;
pub mod scripts;
pub(crate) mod sync;
pub(crate) mod wait;

#[cfg(feature = "node")]
mod node;
