//! Running requests: the state a manager's requests share, the one
//! dispatcher task per manager, and the completion of each request.

use super::outbox::{failed, internal};
use crate::backend::Backend;
use crate::completion::{LockInfo, Outbox, Outcome};
use crate::error::Error;
use crate::lock::HeldLock;
use crate::sync::lock;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use napi::bindgen_prelude::{Float64Array, FnArgs};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use tokio::sync::{mpsc, watch};

pub(crate) type CompletionArgs = FnArgs<(Float64Array, String)>;
pub(crate) type DoneCallback = ThreadsafeFunction<(), (), CompletionArgs, Status, false, true>;
pub(crate) type WarningArgs = FnArgs<(String, Option<String>, Option<f64>, String)>;
pub(crate) type WarningCallback =
    ThreadsafeFunction<WarningArgs, (), WarningArgs, Status, false, true>;
pub(crate) type KeepAliveArgs = FnArgs<(u32, Option<String>)>;
pub(crate) type KeepAliveCallback =
    ThreadsafeFunction<KeepAliveArgs, (), KeepAliveArgs, Status, false, true>;

/// State shared by a manager's requests.
pub(crate) struct Shared {
    pub(crate) manager: Backend,
    pub(crate) done: Mutex<DoneCallback>,
    /// Outcomes waiting for the callback call (shared with that callback).
    pub(crate) outbox: Arc<Mutex<Outbox>>,
    /// Abort switches of the acquires in progress that can be aborted.
    pub(crate) cancels: Mutex<HashMap<u32, watch::Sender<bool>>>,
    /// The locks JS holds, by handle.
    pub(crate) locks: Mutex<HashMap<u32, Arc<HeldLock>>>,
    pub(crate) next_handle: Mutex<u32>,
    /// Where requests go to be run (see [`dispatch`]); started on first use.
    pub(crate) dispatcher: Mutex<Option<mpsc::UnboundedSender<Request>>>,
}

impl Shared {
    /// Queues the outcome of request `id` for JS. The first outcome queued
    /// since JS last took the batch asks napi for a callback call; later
    /// ones join that batch.
    pub(crate) fn complete(&self, id: u32, outcome: Outcome) {
        let first = {
            let mut outbox = lock(&self.outbox);
            outbox.push(id, outcome);
            outbox.records.len() == crate::completion::RECORD_LEN
        };
        if first {
            lock(&self.done).call((), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    pub(crate) fn held(&self, handle: u32) -> Result<Arc<HeldLock>, Error> {
        lock(&self.locks)
            .get(&handle)
            .cloned()
            .ok_or_else(|| Error::new(crate::error::ErrorKind::LockLost, "the lock was released"))
    }

    pub(crate) fn register(&self, held: HeldLock) -> LockInfo {
        let handle = {
            let mut next = lock(&self.next_handle);
            *next = next.wrapping_add(1);
            *next
        };
        let info = LockInfo {
            handle,
            id: held.id.clone(),
            key: held.key.clone(),
            fencing_token: held.fencing_token.map(|t| t as f64),
            acquired_on_attempt: held.acquired_on_attempt as f64,
            acquire_delay: held.acquire_delay_ms as f64,
        };
        lock(&self.locks).insert(handle, Arc::new(held));
        info
    }
}

/// One request's work, run by its manager's dispatcher.
pub(crate) type Request = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs the requests of one manager inside a single Tokio task, until the
/// manager is dropped and its last request has finished.
///
/// Why not a task per request: the commands of requests started in the same
/// JS tick should leave in one write. redis-rs sends what was queued for a
/// connection when its writer task runs, and Tokio runs a task that was just
/// woken before the next one spawned from outside, so one task per request
/// gave one write system call (and often a context switch) per command.
/// Polling all newly arrived requests in one go queues all their commands
/// before the writer runs.
pub(crate) async fn dispatch(mut incoming: mpsc::UnboundedReceiver<Request>) {
    let mut running = FuturesUnordered::new();
    let mut open = true;
    std::future::poll_fn(|cx| {
        while open {
            match incoming.poll_recv(cx) {
                Poll::Ready(Some(request)) => running.push(request),
                Poll::Ready(None) => open = false,
                Poll::Pending => break,
            }
        }
        while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {}
        if !open && running.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
}

/// Runs `op` on the Tokio runtime and completes request `id` with its outcome
/// (a panic becomes an error outcome, so no request is left pending).
pub(crate) fn spawn_request<F>(shared: &Arc<Shared>, id: u32, op: F)
where
    F: Future<Output = Result<Outcome, Error>> + Send + 'static,
{
    let completer = Arc::clone(shared);
    let request: Request = Box::pin(async move {
        let outcome = match AssertUnwindSafe(op).catch_unwind().await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(err)) => failed(&err),
            Err(_) => internal(),
        };
        completer.complete(id, outcome);
    });
    let mut dispatcher = lock(&shared.dispatcher);
    let request = match dispatcher.as_ref() {
        Some(tx) => match tx.send(request) {
            Ok(()) => return,
            Err(mpsc::error::SendError(request)) => request,
        },
        None => request,
    };
    // First request, or the dispatcher is gone (the runtime was shut down
    // under it): start one.
    let (tx, rx) = mpsc::unbounded_channel();
    napi::bindgen_prelude::spawn(dispatch(rx));
    if tx.send(request).is_err() {
        shared.complete(id, internal());
    }
    *dispatcher = Some(tx);
}
