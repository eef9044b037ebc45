//! `waitReplicas`: after a grant on a server with replicas, `WAIT` until
//! enough of them acknowledged it, or release it and fail.

use super::LockManager;
use crate::connection::Connector;
use crate::error::{Error, ErrorKind, Result};
use crate::lock::HeldLock;
use crate::options::{LockConfig, WaitReplicas};

impl LockManager {
    /// `WAIT count timeout` after a grant; if fewer replicas acknowledged it,
    /// releases the lock (a failover could forget it) and fails.
    ///
    /// `WAIT` counts the replicas that acknowledged every write made so far on
    /// this connection, which includes the grant. Meanwhile it holds up the
    /// other commands sent on the shared connection, for at most `timeoutMs`.
    pub(super) async fn wait_for_replicas(
        &self,
        held: &HeldLock,
        wait: WaitReplicas,
    ) -> Result<()> {
        // Not retried: WAIT on a new connection, which wrote nothing, would
        // count replicas that never saw the grant.
        let acked = self
            .run_with(
                |mut c| async move {
                    let n: i64 = redis::cmd("WAIT")
                        .arg(wait.count)
                        .arg(wait.timeout_ms)
                        .query_async(&mut c)
                        .await?;
                    Ok(n)
                },
                false,
                false,
            )
            .await;
        let problem = match acked {
            Ok(n) if n >= 0 && n as u64 >= wait.count => return Ok(()),
            Ok(n) => Error::new(
                ErrorKind::NotReplicated,
                format!(
                    "lock \"{}\" was not granted: {n} of the {} replicas asked for acknowledged \
                     it within {} ms (waitReplicas); it was released",
                    held.key, wait.count, wait.timeout_ms
                ),
            ),
            Err(e) => e,
        };
        let _ = self.release(held).await;
        Err(problem)
    }
}

/// `WAIT` must answer within the command timeout: its own timeout must be
/// shorter.
pub(super) fn check_wait_replicas(config: &LockConfig, connector: &Connector) -> Result<()> {
    let connection = connector.config();
    if config.wait_replicas.is_some() && connector.is_cluster() {
        return Err(Error::invalid(
            "option \"waitReplicas\" is not available on a Redis Cluster: WAIT would go to \
             a node other than the lock's",
        ));
    }
    match config.wait_replicas {
        Some(w) if w.timeout_ms >= connection.command_timeout_ms => Err(Error::invalid(format!(
            "option \"waitReplicas.timeoutMs\" ({} ms) must be shorter than \"commandTimeout\" ({} ms)",
            w.timeout_ms, connection.command_timeout_ms
        ))),
        _ => Ok(()),
    }
}
