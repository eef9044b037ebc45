'use strict'

// The call forms of dist-lock 2.0.x (the 1.0 author's 2.0.1 on the package
// registry), accepted so that its callers keep working:
// `acquire(name, owner, callback)` and `acquire(name, owner)`, where `owner`
// is a label string. It is checked and, for now, not stored: inspection of
// owners comes later.

const { invalid } = require('./errors.js')

/** The longest owner label accepted, in UTF-16 code units (`string.length`). */
const MAX_OWNER_LENGTH = 256

/**
 * The arguments after the resource name of `acquire`/`lock`:
 * `([options][, callback])` or 2.0.x's `(owner[, callback])`. Gives
 * `{ options, callback, error }`; `error` is set for an owner label that is
 * too long (the call then fails with it, by promise or callback).
 */
function acquireArguments(second, third) {
  if (typeof second === 'function' && third === undefined) {
    return { options: undefined, callback: second, error: undefined }
  }
  if (typeof second === 'string') {
    const error =
      second.length > MAX_OWNER_LENGTH
        ? invalid(
            `argument "owner" must be a string of at most ${MAX_OWNER_LENGTH} characters, ` +
              `got one of ${second.length}`,
          )
        : undefined
    return { options: undefined, callback: third, error }
  }
  return { options: second, callback: third, error: undefined }
}

module.exports = { acquireArguments, MAX_OWNER_LENGTH }
