//! A granted lock and the owner-checked operations on it.

use crate::error::{Error, ErrorKind, Result};
use crate::scripts;
use redis::aio::ConnectionLike;

/// What the acquirer learns about a lock it was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The unique id of this grant (UUID v4), stored as the key's value.
    pub id: String,
    /// The Redis key of the lock (`keyPrefix + resourceName`).
    pub key: String,
    /// How many `SET NX` attempts were made, the granting one included.
    pub acquired_on_attempt: u64,
    /// Milliseconds from the start of `acquire` to the grant.
    pub acquire_delay_ms: u64,
}

/// One `SET key id NX PX ttl`: `true` if the lock was taken.
pub async fn try_set<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    id: &str,
    ttl_ms: u64,
) -> Result<bool> {
    let reply: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(id)
        .arg("NX")
        .arg("PX")
        .arg(ttl_ms)
        .query_async(conn)
        .await?;
    Ok(reply.is_some())
}

/// Deletes the lock if `id` still owns it.
///
/// Returns `true` if it was released, `false` if it had already expired or
/// been taken by someone else; another owner's lock is never deleted.
pub async fn release<C: ConnectionLike>(conn: &mut C, key: &str, id: &str) -> Result<bool> {
    let deleted: i64 = scripts::RELEASE.key(key).arg(id).invoke_async(conn).await?;
    Ok(deleted == 1)
}

/// Resets the lock's TTL to `ttl_ms` if `id` still owns it.
///
/// Fails with [`ErrorKind::LockLost`] when the lock is no longer held: a
/// caller that goes on working must know it lost its exclusion.
pub async fn extend<C: ConnectionLike>(
    conn: &mut C,
    key: &str,
    id: &str,
    ttl_ms: u64,
) -> Result<()> {
    let extended: i64 = scripts::EXTEND
        .key(key)
        .arg(id)
        .arg(ttl_ms)
        .invoke_async(conn)
        .await?;
    if extended == 1 {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::LockLost,
            format!("cannot extend lock \"{key}\": it is no longer held (expired or taken by another owner)"),
        ))
    }
}
