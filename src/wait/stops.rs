//! What can end a wait early (the manager's close, the caller's abort), and
//! sleeping until an optional instant.

use crate::error::{Error, Result};
use std::time::Instant;
use tokio::sync::watch;

/// What can end a wait early: the manager's close, the caller's abort.
pub(crate) struct Stops {
    pub(crate) closed: watch::Receiver<bool>,
    pub(crate) cancel: Option<watch::Receiver<bool>>,
}

impl Stops {
    /// Stops for a new acquire; fails at once if one already happened.
    pub(crate) fn start(
        closed: watch::Receiver<bool>,
        cancel: Option<watch::Receiver<bool>>,
    ) -> Result<Self> {
        let stops = Stops { closed, cancel };
        match stops.already() {
            Some(err) => Err(err),
            None => Ok(stops),
        }
    }

    /// The stop that already happened, if any.
    pub(crate) fn already(&self) -> Option<Error> {
        if *self.closed.borrow() {
            Some(Error::closed())
        } else if self.cancel.as_ref().is_some_and(|c| *c.borrow()) {
            Some(Error::aborted())
        } else {
            None
        }
    }

    /// Resolves with the error of the first stop ([`Error::closed`] or
    /// [`Error::aborted`]); never if neither happens.
    pub(crate) async fn stopped(&mut self) -> Error {
        let cancel = async {
            let aborted = match &mut self.cancel {
                Some(c) => c.wait_for(|v| *v).await.is_ok(),
                None => false,
            };
            if !aborted {
                // No signal, or its sender is gone: never aborted.
                std::future::pending::<()>().await
            }
        };
        tokio::select! {
            _ = self.closed.wait_for(|c| *c) => Error::closed(),
            _ = cancel => Error::aborted(),
        }
    }
}

/// Sleeps until `at`, or forever if there is no such instant.
pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
