//! The connection options: the URL (or Cluster seeds / Sentinels), the time
//! bounds and TLS, validated once.

use super::{millis, DEFAULT_COMMAND_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS};
use crate::error::{Error, Result};

/// Which deployment the connection options describe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    /// One Redis server, at `ConnectionConfig::url`.
    #[default]
    Single,
    /// A Redis Cluster, discovered from these seed URLs (credentials and TLS
    /// of the first apply to all nodes).
    Cluster { seeds: Vec<String> },
    /// The master named `master_name` by these Sentinels. The credentials and
    /// database of `ConnectionConfig::url` are those of the master (its host
    /// is ignored); a Sentinel's own credentials go in its URL.
    Sentinel {
        sentinels: Vec<String>,
        master_name: String,
    },
}

/// The Redis connection: a URL understood by redis-rs and its time bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    pub url: String,
    pub connect_timeout_ms: u64,
    pub command_timeout_ms: u64,
    /// TLS settings beyond what the `rediss://` URL says; `None` uses the
    /// system's trust store and verifies the server's certificate.
    pub tls: Option<TlsConfig>,
    /// One server, a Cluster, or a Sentinel-managed master.
    pub mode: Mode,
}

/// TLS settings of a `rediss://` connection (PEM bytes, as Node's `tls`
/// module takes them).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// Certificate authorities to trust instead of the system's.
    pub ca: Option<Vec<u8>>,
    /// Client certificate chain, for servers that ask for one (mutual TLS).
    pub cert: Option<Vec<u8>>,
    /// Private key of `cert`.
    pub key: Option<Vec<u8>>,
    /// `false` accepts any server certificate (no verification at all): for
    /// tests only, as in Node's `rejectUnauthorized: false`.
    pub reject_unauthorized: bool,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material is never printed.
        f.debug_struct("TlsConfig")
            .field("ca", &self.ca.is_some())
            .field("cert", &self.cert.is_some())
            .field("key", &self.key.is_some())
            .field("reject_unauthorized", &self.reject_unauthorized)
            .finish()
    }
}

impl TlsConfig {
    /// Checks that a certificate comes with its key and the other way round.
    pub fn check(&self) -> Result<()> {
        match (&self.cert, &self.key) {
            (Some(_), None) => Err(Error::invalid(
                "option \"tls.cert\" needs \"tls.key\" (the client certificate's private key)",
            )),
            (None, Some(_)) => Err(Error::invalid(
                "option \"tls.key\" needs \"tls.cert\" (the client certificate)",
            )),
            _ => Ok(()),
        }
    }
}

impl ConnectionConfig {
    /// Validates the connection options, filling in defaults.
    pub fn new(
        url: String,
        connect_timeout: Option<f64>,
        command_timeout: Option<f64>,
    ) -> Result<Self> {
        Ok(ConnectionConfig {
            url,
            connect_timeout_ms: match connect_timeout {
                Some(v) => millis("connectTimeout", v, 1)?,
                None => DEFAULT_CONNECT_TIMEOUT_MS,
            },
            command_timeout_ms: match command_timeout {
                Some(v) => millis("commandTimeout", v, 1)?,
                None => DEFAULT_COMMAND_TIMEOUT_MS,
            },
            tls: None,
            mode: Mode::Single,
        })
    }

    /// A Redis Cluster reached through `seeds` (not empty).
    pub fn cluster(
        seeds: Vec<String>,
        connect_timeout: Option<f64>,
        command_timeout: Option<f64>,
    ) -> Result<Self> {
        let Some(first) = seeds.first().cloned() else {
            return Err(Error::invalid(
                "option \"cluster\" must list at least one node URL",
            ));
        };
        let mut c = ConnectionConfig::new(first, connect_timeout, command_timeout)?;
        c.mode = Mode::Cluster { seeds };
        Ok(c)
    }

    /// The master `master_name` of `sentinels` (not empty); `url` carries
    /// the master's credentials and database.
    pub fn sentinel(
        url: String,
        sentinels: Vec<String>,
        master_name: String,
        connect_timeout: Option<f64>,
        command_timeout: Option<f64>,
    ) -> Result<Self> {
        if sentinels.is_empty() {
            return Err(Error::invalid(
                "option \"sentinels\" must list at least one Sentinel URL",
            ));
        }
        if master_name.is_empty() {
            return Err(Error::invalid(
                "option \"masterName\" must be a non-empty string",
            ));
        }
        let mut c = ConnectionConfig::new(url, connect_timeout, command_timeout)?;
        c.mode = Mode::Sentinel {
            sentinels,
            master_name,
        };
        Ok(c)
    }

    /// `host:port` (or the socket path) of the URL, without credentials;
    /// every node's for a Cluster or the Sentinels.
    pub fn address(&self) -> String {
        match &self.mode {
            Mode::Single => address_of(&self.url),
            Mode::Cluster { seeds } => {
                let nodes: Vec<String> = seeds.iter().map(|s| address_of(s)).collect();
                format!("cluster {}", nodes.join(", "))
            }
            Mode::Sentinel {
                sentinels,
                master_name,
            } => {
                let nodes: Vec<String> = sentinels.iter().map(|s| address_of(s)).collect();
                format!("master \"{master_name}\" of sentinels {}", nodes.join(", "))
            }
        }
    }

    /// Adds TLS settings; the URL must then use the `rediss://` scheme.
    pub fn with_tls(mut self, tls: TlsConfig) -> Result<Self> {
        tls.check()?;
        if !self.url.starts_with("rediss://") {
            return Err(Error::invalid(
                "option \"tls\" needs a rediss:// URL (TLS); this one is plain redis://",
            ));
        }
        self.tls = Some(tls);
        Ok(self)
    }
}

/// `host:port` (or the socket path) of a URL, without credentials.
fn address_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if url.contains("unix://") {
        rest.split(['?', '#']).next().unwrap_or(rest).to_owned()
    } else {
        rest[..end].to_owned()
    }
}
