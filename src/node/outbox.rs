//! How outcomes cross to JS: the completion encoding is
//! [`crate::completion`]; here are its constants as JS sees them
//! (`RECORD_LEN`, `OutcomeKind`, `errorCodes()`) and the outcomes of
//! failures.

use crate::completion::Outcome;
use crate::error::{Error, ErrorKind};
use napi_derive::napi;

/// The completion of a request that failed: the kind's number travels in
/// the record, so JS needs no parsing to find the code.
pub(crate) fn failed(err: &Error) -> Outcome {
    Outcome::Failed {
        kind: err.kind() as u32,
        message: err.message().to_owned(),
    }
}

/// Numbers per completion record (see [`crate::completion::Outbox`]).
#[napi]
pub const RECORD_LEN: u32 = 8;

/// The kinds of completion records, as `lib/completions.js` decodes them
/// (the same numbers as [`crate::completion::Kind`]).
#[napi]
pub enum OutcomeKind {
    Done = 0,
    False = 1,
    True = 2,
    Failed = 3,
    Lock = 4,
}

// The exported numbers are the encoder's.
const _: () = {
    use crate::completion::Kind;
    assert!(RECORD_LEN as usize == crate::completion::RECORD_LEN);
    assert!(OutcomeKind::Done as u32 == Kind::Done as u32);
    assert!(OutcomeKind::False as u32 == Kind::False as u32);
    assert!(OutcomeKind::True as u32 == Kind::True as u32);
    assert!(OutcomeKind::Failed as u32 == Kind::Failed as u32);
    assert!(OutcomeKind::Lock as u32 == Kind::Lock as u32);
};

/// The stable error codes, indexed by the kind number a failed completion
/// carries (`lib/errors.js` builds its table from this).
#[napi(js_name = "errorCodes")]
// Called only from JS (the napi registration is not compiled into tests).
#[cfg_attr(test, allow(dead_code))]
pub fn error_codes() -> Vec<String> {
    ErrorKind::ALL.iter().map(|k| k.code().to_owned()).collect()
}

/// The completion of a request whose task panicked or was lost.
pub(crate) fn internal() -> Outcome {
    failed(&Error::new(
        ErrorKind::Internal,
        "dist-lock failed internally (a bug)",
    ))
}
