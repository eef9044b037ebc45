//! How a lock manager reaches its Redis: one server, a Redis Cluster, or the
//! master that a set of Sentinels names.
//!
//! - **Single**: a redis-rs `ConnectionManager` (multiplexed, reconnects).
//! - **Cluster**: a redis-rs cluster connection (`cluster-async`). It routes
//!   each command by the slot of its keys and follows `MOVED`/`ASK`
//!   redirections, so a slot migration or a failover is the client's
//!   business. Every script touches keys of one slot (the names derived from
//!   the lock key share its hash tag, and its fencing counter is the one of
//!   its slot, see [`crate::fencing`]),
//!   and release messages use sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`).
//! - **Sentinel**: the Sentinels are asked for the master's address (redis-rs
//!   `sentinel`), and a `ConnectionManager` is opened to it. After a
//!   connection error, or a `READONLY` answer (the old master came back as a
//!   replica), the address is asked again, so the manager follows the master
//!   across a failover.

use crate::clock;
use crate::error::{Error, ErrorKind, Result};
use crate::lock::Publish;
use crate::options::{ConnectionConfig, Mode, TlsConfig, RECONNECT_RETRIES};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value};
use std::time::Duration;

/// A connection of any mode: each runs commands as redis-rs connections do.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Opens connections of one mode.
pub struct Connector {
    config: ConnectionConfig,
    kind: Kind,
    /// `host:port` of the master the Sentinels named last (Sentinel mode).
    master: std::sync::Mutex<Option<String>>,
}

enum Kind {
    Single(redis::Client),
    Cluster(ClusterClient),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

impl Connector {
    /// Checks the options; connects nothing yet.
    pub fn new(config: ConnectionConfig) -> Result<Self> {
        let kind = match &config.mode {
            Mode::Single => Kind::Single(open_client(&config.url, config.tls.as_ref())?),
            Mode::Cluster { seeds } => Kind::Cluster(cluster_client(&config, seeds, None)?),
            Mode::Sentinel {
                sentinels,
                master_name,
            } => Kind::Sentinel(tokio::sync::Mutex::new(sentinel_client(
                &config,
                sentinels,
                master_name,
            )?)),
        };
        Ok(Connector {
            config,
            kind,
            master: std::sync::Mutex::new(None),
        })
    }

    /// `host:port` of the master the Sentinels named last (Sentinel mode,
    /// once connected); `None` otherwise.
    pub fn master_address(&self) -> Option<String> {
        crate::sync::lock(&self.master).clone()
    }

    /// The server commands go to, for messages: `host:port` of a single
    /// server, of the Sentinels' master once it is known (with the master's
    /// name and the Sentinels), or the list of Cluster seeds.
    pub fn server(&self) -> String {
        match self.master_address() {
            Some(at) => format!("{at}, the {}", self.config.address()),
            None => self.config.address(),
        }
    }

    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// How release messages are published in this mode.
    pub fn publish(&self) -> Publish {
        match self.kind {
            Kind::Cluster(_) => Publish::Sharded,
            _ => Publish::Plain,
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    /// Whether the address of the server is looked up again after errors
    /// (Sentinel mode).
    pub fn follows_master(&self) -> bool {
        matches!(self.kind, Kind::Sentinel(_))
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(clock::duration_ms(self.config.connect_timeout_ms)))
            .set_response_timeout(Some(clock::duration_ms(self.config.command_timeout_ms)))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
    }

    /// A connection that connects on first use, where the mode allows one
    /// (a single server); `None` otherwise.
    pub fn connect_lazy(&self) -> Result<Option<Conn>> {
        match &self.kind {
            Kind::Single(client) => Ok(Some(self.manager_of(client.clone())?)),
            _ => Ok(None),
        }
    }

    /// Opens a connection (for the modes that cannot connect lazily).
    pub async fn connect(&self) -> Result<Conn> {
        match &self.kind {
            Kind::Single(client) => self.manager_of(client.clone()),
            Kind::Cluster(client) => Ok(Conn::Cluster(client.get_async_connection().await?)),
            Kind::Sentinel(_) => self.manager_of(self.master_client().await?),
        }
    }

    /// A reconnecting connection to the server of `client`.
    fn manager_of(&self, client: redis::Client) -> Result<Conn> {
        Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
            client,
            self.manager_config(),
        )?))
    }

    /// The client of the server that publishes release messages (single
    /// server, Sentinel master); `None` on a Cluster.
    pub async fn pubsub_client(&self) -> Result<Option<redis::Client>> {
        match &self.kind {
            Kind::Single(client) => Ok(Some(client.clone())),
            Kind::Cluster(_) => Ok(None),
            Kind::Sentinel(_) => Ok(Some(self.master_client().await?)),
        }
    }

    /// A RESP3 cluster connection whose pushes (sharded messages) go to
    /// `sender`; Cluster mode only.
    pub async fn cluster_pubsub(
        &self,
        sender: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Result<ClusterConnection> {
        let Mode::Cluster { seeds } = &self.config.mode else {
            return Err(Error::new(
                ErrorKind::Internal,
                "sharded pub/sub outside cluster mode",
            ));
        };
        let client = cluster_client(&self.config, seeds, Some(sender))?;
        Ok(client.get_async_connection().await?)
    }

    /// Asks the Sentinels for the current master.
    async fn master_client(&self) -> Result<redis::Client> {
        let Kind::Sentinel(sentinel) = &self.kind else {
            return Err(Error::new(ErrorKind::Internal, "no Sentinel configured"));
        };
        let mut sentinel = sentinel.lock().await;
        let client = sentinel.async_get_client().await.map_err(|e| {
            let Mode::Sentinel { master_name, .. } = &self.config.mode else {
                return Error::from(e);
            };
            Error::new(
                ErrorKind::Connection,
                format!("no master \"{master_name}\" could be found through the Sentinels: {e}"),
            )
            .context(&format!("Redis Sentinel ({})", self.config.address()))
        })?;
        *crate::sync::lock(&self.master) = Some(client.get_connection_info().addr().to_string());
        Ok(client)
    }
}

/// The redis-rs client of one server: plain, or TLS with the given trust
/// anchors and client certificate.
pub fn open_client(url: &str, tls: Option<&TlsConfig>) -> Result<redis::Client> {
    let Some(tls) = tls else {
        if url.starts_with("rediss://") {
            install_crypto_provider();
        }
        return Ok(redis::Client::open(url)?);
    };
    install_crypto_provider();
    redis::Client::build_with_tls(tls_url(url, tls).as_str(), certificates(tls)).map_err(|e| {
        // A malformed PEM is the caller's mistake, not the server's.
        Error::invalid(format!("option \"tls\": {e}"))
    })
}

/// redis-rs turns certificate verification off with a `#insecure` fragment.
fn tls_url(url: &str, tls: &TlsConfig) -> String {
    if tls.reject_unauthorized {
        url.to_owned()
    } else {
        format!("{}#insecure", url.trim_end_matches('#'))
    }
}

fn certificates(tls: &TlsConfig) -> redis::TlsCertificates {
    let client_tls = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: cert.clone(),
            client_key: key.clone(),
        }),
        _ => None,
    };
    redis::TlsCertificates {
        client_tls,
        root_cert: tls.ca.clone(),
    }
}

fn cluster_client(
    config: &ConnectionConfig,
    seeds: &[String],
    push: Option<tokio::sync::mpsc::UnboundedSender<redis::PushInfo>>,
) -> Result<ClusterClient> {
    let tls = config.tls.as_ref();
    if tls.is_some() || seeds.iter().any(|s| s.starts_with("rediss://")) {
        install_crypto_provider();
    }
    let seeds: Vec<String> = match tls {
        Some(tls) => seeds.iter().map(|s| tls_url(s, tls)).collect(),
        None => seeds.to_vec(),
    };
    let mut builder = redis::cluster::ClusterClientBuilder::new(seeds)
        .connection_timeout(clock::duration_ms(config.connect_timeout_ms))
        .response_timeout(clock::duration_ms(config.command_timeout_ms))
        .retries(CLUSTER_RETRIES);
    if let Some(tls) = tls {
        builder = builder.certs(certificates(tls));
    }
    if let Some(sender) = push {
        builder = builder
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(sender);
    }
    builder.build().map_err(|e| {
        Error::invalid(format!(
            "argument \"redis\": not a valid Redis Cluster configuration: {e}"
        ))
    })
}

/// Redirections (`MOVED`, `ASK`) and reconnections a cluster command may go
/// through; the whole call stays bounded by `connectTimeout + commandTimeout`.
const CLUSTER_RETRIES: u32 = 6;

fn sentinel_client(
    config: &ConnectionConfig,
    sentinels: &[String],
    master_name: &str,
) -> Result<SentinelClient> {
    if sentinels.iter().any(|s| s.starts_with("rediss://")) || config.tls.is_some() {
        install_crypto_provider();
    }
    // The Sentinel client takes no certificates of ours: only the system's
    // trust store, or no verification at all.
    if let Some(tls) = &config.tls {
        if tls.ca.is_some() || tls.cert.is_some() {
            return Err(Error::invalid(
                "option \"tls\": with Sentinels, only true or { rejectUnauthorized } is \
                 supported (not \"ca\", \"cert\" or \"key\")",
            ));
        }
    }
    // The master's credentials and database come from the URL template.
    let master = config
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| Error::invalid(format!("argument \"redis\": {e}")))?;
    let mut node = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(master.redis_settings().clone());
    if config.url.starts_with("rediss://") {
        node = node.set_tls_mode(
            if config.tls.as_ref().is_some_and(|t| !t.reject_unauthorized) {
                redis::TlsMode::Insecure
            } else {
                redis::TlsMode::Secure
            },
        );
    }
    SentinelClient::build(
        sentinels.to_vec(),
        master_name,
        Some(node),
        SentinelServerType::Master,
    )
    .map_err(|e| {
        Error::invalid(format!(
            "argument \"redis\": bad Sentinel configuration: {e}"
        ))
    })
}

/// rustls needs one process-wide crypto provider; the first TLS client
/// installs ring's (a provider installed before, by anyone, is kept).
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // ring's provider is deprecated only for lacking post-quantum key
        // exchange; the alternative (aws-lc-rs) needs a much heavier build on
        // every target. Redis servers negotiate classic suites.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
