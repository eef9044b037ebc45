//! The outcomes of requests as they cross to JS: a batch of numbers and one
//! string (decoded by `lib/completions.js`). Plain Rust, so that the
//! encoding is unit-tested without Node.

/// A granted lock as JS sees it; `handle` names it in later calls.
pub struct LockInfo {
    pub handle: u32,
    pub id: String,
    pub key: String,
    /// Exact as a JS number up to 2^53 − 1.
    /// `None` in Redlock quorum mode (no honest token there).
    pub fencing_token: Option<f64>,
    pub acquired_on_attempt: f64,
    pub acquire_delay: f64,
}

/// The outcome of one request.
pub enum Outcome {
    Lock(LockInfo),
    Flag(bool),
    Done,
    /// An error: its kind's number (`ErrorKind as u32`, the index into the
    /// exported code table) and its message.
    Failed {
        kind: u32,
        message: String,
    },
}

/// What kind of outcome a completion record carries (its second field);
/// exported to JS as `OutcomeKind` (the numbers are the discriminants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Kind {
    Done = 0,
    False = 1,
    True = 2,
    Failed = 3,
    Lock = 4,
}

impl Kind {
    fn number(self) -> f64 {
        f64::from(self as u32)
    }
}

/// Numbers per completion record (exported to JS as `RECORD_LEN`).
pub const RECORD_LEN: usize = 8;

/// The completions not yet delivered to JS, encoded for one callback call:
/// `records` holds [`RECORD_LEN`] numbers per completion, `text` the strings
/// of all of them, one after the other.
///
/// A record is `[request id, kind, a, b, c, d, e, f]`:
/// - `Kind::Done`, `False`, `True`: nothing else (zeros);
/// - `Kind::Failed`: `a` = length of the message in `text`, `b` = the
///   error kind's number (its code is `errorCodes()[b]` in JS);
/// - `Kind::Lock`: `a` = handle, `b` = fencing token (NaN: none), `c` =
///   acquiredOnAttempt, `d` = acquireDelay, `e` and `f` = lengths of the lock
///   id and of the key in `text`.
///
/// Lengths are in UTF-16 code units, as JS `slice` counts. Why not one call
/// per completion with an object or arguments: each call costs a lock on
/// napi's queue (contended with the JS thread draining it) and a callback
/// scope with its own microtask checkpoint; a batch costs that once, and the
/// requests JS starts while handling the batch leave for Redis together.
#[derive(Debug, Default)]
pub struct Outbox {
    pub records: Vec<f64>,
    pub text: String,
}

impl Outbox {
    /// Appends the outcome of request `id`.
    pub fn push(&mut self, id: u32, outcome: Outcome) {
        let mut record = [0.0; RECORD_LEN];
        record[0] = f64::from(id);
        match outcome {
            Outcome::Done => record[1] = Kind::Done.number(),
            Outcome::Flag(false) => record[1] = Kind::False.number(),
            Outcome::Flag(true) => record[1] = Kind::True.number(),
            Outcome::Failed { kind, message } => {
                record[1] = Kind::Failed.number();
                record[2] = self.add_text(&message);
                record[3] = f64::from(kind);
            }
            Outcome::Lock(info) => {
                record[1] = Kind::Lock.number();
                record[2] = f64::from(info.handle);
                record[3] = info.fencing_token.unwrap_or(f64::NAN);
                record[4] = info.acquired_on_attempt;
                record[5] = info.acquire_delay;
                record[6] = self.add_text(&info.id);
                record[7] = self.add_text(&info.key);
            }
        }
        self.records.extend_from_slice(&record);
    }

    /// Appends `s` to `text`; returns its length in UTF-16 code units.
    fn add_text(&mut self, s: &str) -> f64 {
        self.text.push_str(s);
        s.encode_utf16().count() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(handle: u32, id: &str, key: &str, token: Option<f64>) -> Outcome {
        Outcome::Lock(LockInfo {
            handle,
            id: id.to_owned(),
            key: key.to_owned(),
            fencing_token: token,
            acquired_on_attempt: 3.0,
            acquire_delay: 12.0,
        })
    }

    #[test]
    fn records_and_text_of_a_mixed_batch() {
        let mut out = Outbox::default();
        out.push(1, Outcome::Done);
        out.push(2, Outcome::Flag(true));
        out.push(3, Outcome::Flag(false));
        out.push(
            4,
            Outcome::Failed {
                kind: 2,
                message: "ü!".into(),
            },
        );
        out.push(5, lock(7, "id-1", "lock:🔒", Some(42.0)));
        out.push(u32::MAX, lock(8, "id-2", "lock:名", None));
        assert_eq!(out.records.len(), 6 * RECORD_LEN);
        assert_eq!(out.text, "ü!id-1lock:🔒id-2lock:名");
        let r = |i: usize| &out.records[i * RECORD_LEN..(i + 1) * RECORD_LEN];
        assert_eq!(
            r(0),
            [1.0, Kind::Done.number(), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        );
        assert_eq!(r(1)[..2], [2.0, Kind::True.number()]);
        assert_eq!(r(2)[..2], [3.0, Kind::False.number()]);
        // "ü!": 2 UTF-16 code units (3 bytes); error kind 2.
        assert_eq!(r(3)[..4], [4.0, Kind::Failed.number(), 2.0, 2.0]);
        // "lock:🔒": a surrogate pair, 7 code units (9 bytes).
        assert_eq!(
            r(4),
            [5.0, Kind::Lock.number(), 7.0, 42.0, 3.0, 12.0, 4.0, 7.0]
        );
        assert_eq!(r(5)[..3], [f64::from(u32::MAX), Kind::Lock.number(), 8.0]);
        assert!(r(5)[3].is_nan(), "no fencing token: NaN");
        assert_eq!(r(5)[6..], [4.0, 6.0]);
    }

    #[test]
    fn taking_a_batch_leaves_an_empty_outbox() {
        let mut out = Outbox::default();
        let message = "x".into();
        out.push(1, Outcome::Failed { kind: 0, message });
        let taken = std::mem::take(&mut out);
        assert_eq!(taken.records.len(), RECORD_LEN);
        assert!(out.records.is_empty() && out.text.is_empty());
    }
}
