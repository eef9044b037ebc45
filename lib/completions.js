'use strict'

// Decodes the batches of request outcomes that the native side delivers
// (src/completion.rs, `Outbox`): `records` (a Float64Array) holds
// RECORD_LEN numbers per outcome, `text` the strings of all of them one
// after the other. RECORD_LEN, the kinds and the error codes come from the
// binding: they are defined once, in Rust.
//
//   [requestId, kind, a, b, c, d, e, f]
//   kind Done / False / True: nothing else
//   kind Failed: a = length of the message in text, b = the error kind's
//                number (its code is errorCodes()[b])
//   kind Lock:   a = handle, b = fencing token (NaN: none), c = attempts,
//                d = acquire delay (ms), e / f = lengths of the lock id / key

const { RECORD_LEN, OutcomeKind, errorCodes } = require('./native.js')

const { Done: DONE, False: FALSE, True: TRUE, Failed: FAILED, Lock: LOCK } = OutcomeKind
const CODES = errorCodes()

/** A failure as the native side reports it: a stable code and a message. */
class NativeFailure {
  constructor(code, message) {
    this.code = code
    this.message = message
  }

  toString() {
    return `[${this.code}] ${this.message}`
  }
}

/** A granted lock as the native side describes it. */
class LockInfo {
  constructor(handle, id, key, fencingToken, acquiredOnAttempt, acquireDelay) {
    this.handle = handle
    this.id = id
    this.key = key
    this.fencingToken = fencingToken
    this.acquiredOnAttempt = acquiredOnAttempt
    this.acquireDelay = acquireDelay
  }
}

/**
 * Calls `each(requestId, error, value)` for every outcome of the batch, in
 * order: `error` is a NativeFailure (`code`, `message`) or null; `value` is
 * a LockInfo, a boolean, or undefined.
 */
function decodeCompletions(records, text, each) {
  let at = 0
  for (let i = 0; i + RECORD_LEN <= records.length; i += RECORD_LEN) {
    const id = records[i]
    switch (records[i + 1]) {
      case DONE:
        each(id, null, undefined)
        break
      case FALSE:
        each(id, null, false)
        break
      case TRUE:
        each(id, null, true)
        break
      case FAILED: {
        const end = at + records[i + 2]
        const code = CODES[records[i + 3]] ?? 'EINTERNAL'
        each(id, new NativeFailure(code, text.slice(at, end)), undefined)
        at = end
        break
      }
      case LOCK: {
        const idEnd = at + records[i + 6]
        const keyEnd = idEnd + records[i + 7]
        const token = records[i + 3]
        const info = new LockInfo(
          records[i + 2],
          text.slice(at, idEnd),
          text.slice(idEnd, keyEnd),
          Number.isNaN(token) ? null : token,
          records[i + 4],
          records[i + 5],
        )
        at = keyEnd
        each(id, null, info)
        break
      }
      default:
        each(
          id,
          new NativeFailure('EINTERNAL', `dist-lock failed internally (a bug): unknown outcome kind ${records[i + 1]}`),
          undefined,
        )
    }
  }
}

module.exports = { decodeCompletions, LockInfo, NativeFailure }
