//! Release notifications over Redis pub/sub.
//!
//! The release script publishes on a channel per lock key (see
//! [`crate::lock::channel`]) as it deletes the key. A manager keeps one
//! subscription connection, shared by all its waiters, and subscribes to a
//! channel only while somebody in this process waits for that lock, so
//! nothing is subscribed when nobody waits.
//!
//! Pub/sub loses messages: a release that happens before the SUBSCRIBE is
//! confirmed, one made by a 1.0 process (which does not publish), a lock that
//! expires by its TTL, and everything sent while the connection is down. The
//! waiters therefore never rely on a message alone: they subscribe before the
//! attempt whose refusal makes them wait, still poll every `retryDelay`,
//! wake when the holder's TTL runs out, and are all woken after the
//! subscription connection was re-established.
//!
//! On a Redis Cluster the channels are sharded (`SSUBSCRIBE`): each lives on
//! the node that serves its slot, the lock key's. A RESP3 cluster connection
//! carries the subscriptions; redis-rs subscribes again after a reconnection
//! or a slot move, and every waiter of a channel is woken then, since
//! messages may have been lost meanwhile.

use crate::connection::Connector;
use crate::error::{Error, ErrorKind, Result};
use futures_util::StreamExt;
use redis::aio::PubSubSink;
use redis::cluster_async::ClusterConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::broadcast;

/// The payload that wakes every waiter of a channel.
pub const WAKE_ALL: &str = "*";

/// Pause before re-establishing a dropped subscription connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

struct Channel {
    sender: broadcast::Sender<Arc<str>>,
    subscribers: usize,
}

struct Inner {
    channels: HashMap<String, Channel>,
    /// The subscribe side of the live connection, if any.
    sink: Option<Sink>,
    closed: bool,
}

/// The side of a subscription connection that subscribes.
#[derive(Clone)]
enum Sink {
    /// Plain pub/sub on one server.
    Plain(PubSubSink),
    /// Sharded pub/sub over a RESP3 cluster connection.
    Sharded(ClusterConnection),
}

impl Sink {
    async fn subscribe(&mut self, channel: &str) -> redis::RedisResult<()> {
        match self {
            Sink::Plain(s) => s.subscribe(channel).await,
            Sink::Sharded(c) => c.ssubscribe(channel).await,
        }
    }

    async fn unsubscribe(&mut self, channel: &str) -> redis::RedisResult<()> {
        match self {
            Sink::Plain(s) => s.unsubscribe(channel).await,
            Sink::Sharded(c) => c.sunsubscribe(channel).await,
        }
    }
}

/// The manager's subscription connection and the channels it listens to.
pub struct Notifier {
    connector: Arc<Connector>,
    connect_timeout: Duration,
    inner: Mutex<Inner>,
    /// Serialises connection attempts.
    connecting: tokio::sync::Mutex<()>,
    /// Keeps SUBSCRIBE and UNSUBSCRIBE commands in order.
    ordered: tokio::sync::Mutex<()>,
    /// Flips to `true` on close: the reader task drops the connection.
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// A subscription to one channel; dropping it unsubscribes (when it was the
/// last one of its channel).
pub struct Subscription {
    notifier: Weak<Notifier>,
    channel: String,
    receiver: broadcast::Receiver<Arc<str>>,
}

impl Subscription {
    /// Waits for a release message. With `only_for`, one addressed to that
    /// waiter or to everybody ([`WAKE_ALL`]); without, any. A lost message
    /// (lag) also wakes, since the waiter just tries again.
    pub async fn woken(&mut self, only_for: Option<&str>) {
        loop {
            match self.receiver.recv().await {
                Ok(payload)
                    if only_for.is_none_or(|id| &*payload == WAKE_ALL || &*payload == id) =>
                {
                    return
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => return,
                // The channel is gone (manager closed): nothing will come.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

impl Subscription {
    /// Forgets the messages already received: a waiter about to ask Redis
    /// learns from its answer what they announced.
    pub fn drain(&mut self) {
        loop {
            match self.receiver.try_recv() {
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(notifier) = self.notifier.upgrade() {
            notifier.unsubscribe(&self.channel);
        }
    }
}

impl Notifier {
    pub fn new(connector: Arc<Connector>, connect_timeout: Duration) -> Self {
        Notifier {
            connector,
            connect_timeout,
            inner: Mutex::new(Inner {
                channels: HashMap::new(),
                sink: None,
                closed: false,
            }),
            connecting: tokio::sync::Mutex::new(()),
            ordered: tokio::sync::Mutex::new(()),
            shutdown: tokio::sync::watch::Sender::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// Subscribes to `channel`; returns once Redis confirmed the SUBSCRIBE
    /// (or at once if this process already listens to it).
    pub async fn subscribe(self: &Arc<Self>, channel: &str) -> Result<Subscription> {
        let (receiver, first) = {
            let mut inner = self.lock();
            if inner.closed {
                return Err(Error::closed());
            }
            let entry = inner
                .channels
                .entry(channel.to_owned())
                .or_insert_with(|| Channel {
                    sender: broadcast::channel(16).0,
                    subscribers: 0,
                });
            entry.subscribers += 1;
            let first = entry.subscribers == 1;
            (entry.sender.subscribe(), first)
        };
        let subscription = Subscription {
            notifier: Arc::downgrade(self),
            channel: channel.to_owned(),
            receiver,
        };
        if !first {
            return Ok(subscription);
        }
        loop {
            let sink = self.lock().sink.clone();
            match sink {
                Some(mut sink) => {
                    // In order with any UNSUBSCRIBE of the same channel.
                    let _ordered = self.ordered.lock().await;
                    self.bounded(sink.subscribe(channel)).await?;
                    return Ok(subscription);
                }
                None => {
                    if self.connect().await?.iter().any(|c| c == channel) {
                        return Ok(subscription);
                    }
                }
            }
        }
    }

    fn unsubscribe(self: Arc<Self>, channel: &str) {
        {
            let mut inner = self.lock();
            let Some(entry) = inner.channels.get_mut(channel) else {
                return;
            };
            entry.subscribers -= 1;
            if entry.subscribers > 0 {
                return;
            }
            inner.channels.remove(channel);
            if inner.sink.is_none() {
                return;
            }
        }
        let channel = channel.to_owned();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                // SUBSCRIBE and UNSUBSCRIBE go out one at a time, and a
                // channel somebody waits on again is not unsubscribed: a
                // late UNSUBSCRIBE must not undo a newer SUBSCRIBE.
                let _ordered = self.ordered.lock().await;
                let sink = {
                    let inner = self.lock();
                    if inner.channels.contains_key(&channel) {
                        return;
                    }
                    inner.sink.clone()
                };
                if let Some(mut sink) = sink {
                    let _ = self.bounded(sink.unsubscribe(&channel)).await;
                }
            });
        }
    }

    /// Opens the subscription connection (unless another task just did),
    /// subscribes to every channel waited on, and starts the reader task.
    /// Returns the channels it subscribed to.
    async fn connect(self: &Arc<Self>) -> Result<Vec<String>> {
        let _connecting = self.connecting.lock().await;
        if self.lock().sink.is_some() {
            return Ok(Vec::new());
        }
        let client = self.bounded(self.connector.pubsub_client()).await?;
        let channels: Vec<String> = self.lock().channels.keys().cloned().collect();
        let mut shutdown = self.shutdown.subscribe();
        let notifier = Arc::downgrade(self);
        let sink = match client {
            Some(client) => {
                let pubsub = self.bounded(client.get_async_pubsub()).await?;
                let (mut sink, mut stream) = pubsub.split();
                if !channels.is_empty() {
                    self.bounded(sink.subscribe(&channels)).await?;
                }
                tokio::spawn(async move {
                    loop {
                        let msg = tokio::select! {
                            msg = stream.next() => msg,
                            // Dropping the stream closes the connection.
                            _ = shutdown.wait_for(|s| *s) => return,
                        };
                        let Some(msg) = msg else { break };
                        let Some(notifier) = notifier.upgrade() else {
                            return;
                        };
                        let payload: String =
                            msg.get_payload().unwrap_or_else(|_| WAKE_ALL.to_owned());
                        notifier.deliver(msg.get_channel_name(), &payload);
                    }
                    // The connection is gone: messages may have been lost.
                    if let Some(notifier) = notifier.upgrade() {
                        notifier.connection_lost().await;
                    }
                });
                Sink::Plain(sink)
            }
            None => {
                let (sender, mut pushes) = tokio::sync::mpsc::unbounded_channel();
                let conn = self.bounded(self.connector.cluster_pubsub(sender)).await?;
                let mut sink = Sink::Sharded(conn);
                // One by one: channels of different slots live on different nodes.
                for channel in &channels {
                    self.bounded(sink.subscribe(channel)).await?;
                }
                tokio::spawn(async move {
                    loop {
                        let push = tokio::select! {
                            push = pushes.recv() => push,
                            _ = shutdown.wait_for(|s| *s) => return,
                        };
                        let Some(push) = push else { break };
                        let Some(notifier) = notifier.upgrade() else {
                            return;
                        };
                        notifier.on_push(push);
                    }
                    if let Some(notifier) = notifier.upgrade() {
                        notifier.connection_lost().await;
                    }
                });
                sink
            }
        };
        let mut inner = self.lock();
        if inner.closed {
            return Err(Error::closed());
        }
        inner.sink = Some(sink);
        Ok(channels)
    }

    /// Runs `f` within the connect timeout (a subscription's bound).
    async fn bounded<T, E: Into<Error>>(
        &self,
        f: impl std::future::Future<Output = std::result::Result<T, E>>,
    ) -> Result<T> {
        tokio::time::timeout(self.connect_timeout, f)
            .await
            .map_err(|_| no_answer())?
            .map_err(Into::into)
    }

    /// Hands a release message to the waiters of its channel.
    fn deliver(&self, channel: &str, payload: &str) {
        let sender = self.lock().channels.get(channel).map(|c| c.sender.clone());
        if let Some(sender) = sender {
            let _ = sender.send(Arc::from(payload));
        }
    }

    /// A push of the cluster subscription connection.
    fn on_push(&self, push: redis::PushInfo) {
        use redis::PushKind;
        let text = |v: &redis::Value| redis::from_redis_value_ref::<String>(v).ok();
        match push.kind {
            PushKind::SMessage | PushKind::Message => {
                if let (Some(channel), Some(payload)) = (
                    push.data.first().and_then(text),
                    push.data.get(1).and_then(text),
                ) {
                    self.deliver(&channel, &payload);
                }
            }
            // Subscribed (again, after a reconnection or a slot move):
            // messages may have been lost meanwhile.
            PushKind::SSubscribe | PushKind::Subscribe => {
                if let Some(channel) = push.data.first().and_then(text) {
                    self.deliver(&channel, WAKE_ALL);
                }
            }
            PushKind::Disconnection => self.wake_all(),
            _ => {}
        }
    }

    /// Wakes every waiter (messages may have been lost).
    fn wake_all(&self) {
        let inner = self.lock();
        for channel in inner.channels.values() {
            let _ = channel.sender.send(Arc::from(WAKE_ALL));
        }
    }

    /// After the subscription connection dropped: reconnect while somebody
    /// waits, then wake every waiter so that none sleeps through a lost
    /// release message.
    ///
    /// Boxed: it is reached from the reader task that `connect` spawns, and
    /// calls `connect` again.
    fn connection_lost(
        self: Arc<Self>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.reconnect().await })
    }

    async fn reconnect(self: Arc<Self>) {
        self.lock().sink = None;
        loop {
            {
                let inner = self.lock();
                if inner.closed || inner.channels.is_empty() {
                    return;
                }
            }
            tokio::time::sleep(RECONNECT_PAUSE).await;
            if self.connect().await.is_ok() {
                break;
            }
            // Meanwhile the waiters poll; keep trying while they wait.
        }
        self.wake_all();
    }

    /// Drops the connection and stops reconnecting.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.sink = None;
        inner.channels.clear();
        self.shutdown.send_replace(true);
    }
}

fn no_answer() -> Error {
    Error::new(
        ErrorKind::Connection,
        "Redis connection failed: no answer to the subscription in time",
    )
}
