//! One error type for the whole core, with a stable string code per kind.
//!
//! The codes are part of the public API: the JS layer turns each into an
//! exported error class, and users match on `err.code`. An error that came
//! from redis-rs keeps it as its [`std::error::Error::source`], and the
//! decisions taken on errors (retry, re-resolve the master) read its kind,
//! never the message text.

use std::fmt;

/// What went wrong, as a caller can act on it. The order is the numbering
/// exported to JS ([`ErrorKind::ALL`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An argument or option is missing, of the wrong type or out of range.
    InvalidArgument,
    /// Redis could not be reached, the connection dropped, or a command
    /// got no answer within the configured time.
    Connection,
    /// Redis answered with an error (out of memory, read-only replica, ...).
    Redis,
    /// The lock is no longer held by its owner (expired or taken by another).
    LockLost,
    /// The lock manager was closed.
    Closed,
    /// Fewer replicas than `waitReplicas.count` acknowledged a grant in time;
    /// the lock was released rather than granted.
    NotReplicated,
    /// The caller aborted the acquisition (its AbortSignal).
    Aborted,
    /// The server may evict lock keys (a `maxmemory-policy` other than
    /// `noeviction` with `maxmemory` set), or its policy could not be read,
    /// and `evictionPolicy: 'refuse'` forbids locking there.
    Eviction,
    /// dist-lock itself failed (a bug).
    Internal,
}

impl ErrorKind {
    /// Every kind, in the order of their numbers (`kind as usize`).
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::InvalidArgument,
        ErrorKind::Connection,
        ErrorKind::Redis,
        ErrorKind::LockLost,
        ErrorKind::Closed,
        ErrorKind::NotReplicated,
        ErrorKind::Aborted,
        ErrorKind::Eviction,
        ErrorKind::Internal,
    ];

    /// The stable code users match on (`err.code` in JS).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "EINVALIDARG",
            ErrorKind::Connection => "ECONNECTION",
            ErrorKind::Redis => "EREDIS",
            ErrorKind::LockLost => "ELOCKLOST",
            ErrorKind::Closed => "ECLOSED",
            ErrorKind::NotReplicated => "ENOTREPLICATED",
            ErrorKind::Aborted => "ABORT_ERR",
            ErrorKind::Eviction => "EEVICTION",
            ErrorKind::Internal => "EINTERNAL",
        }
    }
}

/// An error of the core: a kind, a human-readable message, and the
/// redis-rs error it came from (if any).
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// The connection failed in a way a second try on a fresh connection
    /// may fix (refused, reset, broken pipe), unlike a timeout.
    retryable: bool,
    /// The message already names the server or deployment it concerns
    /// (see [`Error::context`]).
    has_context: bool,
    /// The redis-rs error this one was made from.
    source: Option<redis::RedisError>,
}

/// Equal kind and message (the source is not compared).
impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.message == other.message
            && self.retryable == other.retryable
            && self.has_context == other.has_context
    }
}

impl Eq for Error {}

/// Result alias of the core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            retryable: false,
            has_context: false,
            source: None,
        }
    }

    /// An invalid argument or option; the message must name it.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    pub fn aborted() -> Self {
        Error::new(ErrorKind::Aborted, "the acquisition was aborted")
    }

    pub fn closed() -> Self {
        Error::new(ErrorKind::Closed, "the lock manager is closed")
    }

    /// Whether the operation may be tried once more on a new connection.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// Whether a server answered that it is a read-only replica (after a
    /// failover, the connection may still point at the old master).
    pub fn is_read_only(&self) -> bool {
        self.source
            .as_ref()
            .is_some_and(|e| e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly))
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The same error with `prefix` before its message (which server or
    /// mode it concerns).
    pub fn context(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self.has_context = true;
        self
    }

    /// Whether [`Error::context`] already named the server or deployment.
    pub fn has_context(&self) -> bool {
        self.has_context
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

impl From<redis::RedisError> for Error {
    /// Sorts a redis-rs error into a connection problem (nothing or no Redis
    /// answered) or an error reply of a Redis server that did answer.
    fn from(err: redis::RedisError) -> Self {
        use redis::ErrorKind as K;
        let kind = match err.kind() {
            // Refused credentials say the connection is misconfigured, not
            // that a command failed.
            _ if matches!(err.code(), Some("NOAUTH" | "WRONGPASS")) => ErrorKind::Connection,
            // An error reply; `Extension` is a reply with a code redis-rs
            // does not name itself (OOM, BUSY, ...).
            K::Server(_) | K::Extension => ErrorKind::Redis,
            K::InvalidClientConfig => ErrorKind::InvalidArgument,
            _ => ErrorKind::Connection,
        };
        let prefix = match kind {
            ErrorKind::Redis => "Redis replied with an error",
            ErrorKind::InvalidArgument => "argument \"redis\" is not a valid Redis connection",
            _ => "Redis connection failed",
        };
        // A server's reply keeps Redis's own code (READONLY, OOM, ...).
        let text = match (kind, err.code()) {
            (ErrorKind::Redis, Some(code)) => format!("{code} {}", err.detail().unwrap_or("")),
            _ => err.to_string(),
        };
        let mut out = Error::new(kind, format!("{prefix}: {}", text.trim_end()));
        out.retryable = kind == ErrorKind::Connection && err.is_io_error() && !err.is_timeout();
        out.source = Some(err);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(ErrorKind::InvalidArgument.code(), "EINVALIDARG");
        assert_eq!(ErrorKind::Connection.code(), "ECONNECTION");
        assert_eq!(ErrorKind::Redis.code(), "EREDIS");
        assert_eq!(ErrorKind::LockLost.code(), "ELOCKLOST");
        assert_eq!(ErrorKind::Closed.code(), "ECLOSED");
        assert_eq!(ErrorKind::NotReplicated.code(), "ENOTREPLICATED");
        assert_eq!(ErrorKind::Eviction.code(), "EEVICTION");
    }

    #[test]
    fn context_is_added_once_and_known() {
        let err = Error::new(ErrorKind::Connection, "refused");
        assert!(!err.has_context());
        let err = err.context("127.0.0.1:6380");
        assert!(err.has_context());
        assert_eq!(err.message(), "127.0.0.1:6380: refused");
    }

    #[test]
    fn redis_errors_are_sorted_by_origin() {
        let io: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
        assert_eq!(Error::from(io).kind(), ErrorKind::Connection);
        let bad_url = redis::Client::open("definitely not a url").err();
        let bad_url = bad_url.map(Error::from).map(|e| e.kind());
        assert_eq!(bad_url, Some(ErrorKind::InvalidArgument));
    }

    #[test]
    fn a_read_only_reply_is_told_by_its_kind_and_kept_as_the_source() {
        let reply = redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly),
            "You can't write against a read only replica.",
        ));
        let err = Error::from(reply);
        assert_eq!(err.kind(), ErrorKind::Redis);
        assert!(err.is_read_only());
        assert!(std::error::Error::source(&err).is_some());
        // The same words in another error decide nothing.
        let other = Error::new(ErrorKind::Redis, "READONLY in a message");
        assert!(!other.is_read_only());
        let oom = Error::from(redis::RedisError::from((
            redis::ErrorKind::Extension,
            "OOM",
        )));
        assert!(!oom.is_read_only());
    }

    #[test]
    fn kinds_are_numbered_in_the_order_of_all() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind:?}");
        }
    }
}
