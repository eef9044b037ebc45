//! The lock manager of each deployment mode behind one interface: a single
//! Redis (also reached through Redis Cluster or Sentinel, see
//! [`crate::connection`]), or a Redlock quorum of independent masters.

use crate::error::Result;
use crate::eviction::WarningSink;
use crate::keepalive::KeepAliveEvent;
use crate::lock::HeldLock;
use crate::manager::LockManager;
use crate::options::{LockConfig, LockOptions};
use crate::quorum::QuorumManager;
use std::sync::Arc;
use tokio::sync::watch;

/// A lock manager of any mode.
#[derive(Clone)]
pub enum Backend {
    /// One logical Redis: a server, a Cluster, or a Sentinel-managed master.
    Single(Arc<LockManager>),
    /// Several independent masters (Redlock).
    Quorum(Arc<QuorumManager>),
}

impl Backend {
    pub fn config(&self) -> &LockConfig {
        match self {
            Backend::Single(m) => m.config(),
            Backend::Quorum(m) => m.config(),
        }
    }

    pub async fn acquire(
        &self,
        resource_name: &str,
        options: Option<&LockOptions>,
        cancel: Option<watch::Receiver<bool>>,
    ) -> Result<Option<HeldLock>> {
        match self {
            Backend::Single(m) => m.acquire(resource_name, options, cancel).await,
            Backend::Quorum(m) => m.acquire(resource_name, options, cancel).await,
        }
    }

    pub async fn release(&self, held: &HeldLock) -> Result<bool> {
        match self {
            Backend::Single(m) => m.release(held).await,
            Backend::Quorum(m) => m.release(held).await,
        }
    }

    pub async fn extend(&self, held: &HeldLock, ttl_ms: u64) -> Result<()> {
        match self {
            Backend::Single(m) => m.extend(held, ttl_ms).await,
            Backend::Quorum(m) => m.extend(held, ttl_ms).await,
        }
    }

    pub async fn is_held(&self, held: &HeldLock) -> Result<bool> {
        match self {
            Backend::Single(m) => m.is_held(held).await,
            Backend::Quorum(m) => m.is_held(held).await,
        }
    }

    pub async fn is_locked(&self, resource_name: &str) -> Result<bool> {
        match self {
            Backend::Single(m) => m.is_locked(resource_name).await,
            Backend::Quorum(m) => m.is_locked(resource_name).await,
        }
    }

    pub fn auto_extend(
        &self,
        held: Arc<HeldLock>,
        on_event: impl Fn(KeepAliveEvent) + Send + Sync + 'static,
    ) {
        match self {
            Backend::Single(m) => m.auto_extend(held, on_event),
            Backend::Quorum(m) => m.auto_extend(held, on_event),
        }
    }

    /// Where eviction warnings of every server go (see [`crate::eviction`]).
    pub fn on_warning(&self, sink: WarningSink) {
        match self {
            Backend::Single(m) => m.on_warning(sink),
            Backend::Quorum(m) => m.on_warning(sink),
        }
    }

    /// Waits (bounded) for the cleanups behind failed attempts; see
    /// [`LockManager::settle`].
    pub async fn settle(&self) {
        match self {
            Backend::Single(m) => m.settle().await,
            Backend::Quorum(m) => m.settle().await,
        }
    }

    pub fn close(&self) {
        match self {
            Backend::Single(m) => m.close(),
            Backend::Quorum(m) => m.close(),
        }
    }

    pub fn is_closed(&self) -> bool {
        match self {
            Backend::Single(m) => m.is_closed(),
            Backend::Quorum(m) => m.is_closed(),
        }
    }
}
