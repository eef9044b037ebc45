'use strict'

// The error classes of dist-lock and the translation of native errors.
// The native core rejects with `[CODE] message`; `fromNative` turns that into
// the class of that code.

const kDistLockError = Symbol('dist-lock.error')

/** Base class of every error dist-lock reports; `code` is stable. */
class DistLockError extends Error {
  constructor(message, code, options) {
    super(message, options)
    this.code = code
  }

  // InvalidArgumentError extends TypeError (it is one), yet users may catch
  // every dist-lock error with `instanceof DistLockError`: the check looks at
  // a brand that all dist-lock errors carry. Subclasses keep the ordinary check.
  static [Symbol.hasInstance](value) {
    if (this === DistLockError) {
      return value != null && value[kDistLockError] === true
    }
    return Function.prototype[Symbol.hasInstance].call(this, value)
  }
}
Object.defineProperty(DistLockError.prototype, kDistLockError, { value: true })
DistLockError.prototype.name = 'DistLockError'

function defineError(name, code, Base = DistLockError) {
  const ErrorClass = {
    [name]: class extends Base {
      constructor(message, options) {
        if (Base === DistLockError) {
          super(message, code, options)
        } else {
          super(message, options)
          this.code = code
        }
      }
    },
  }[name]
  ErrorClass.prototype.name = name
  ErrorClass.code = code
  if (Base !== DistLockError) {
    Object.defineProperty(ErrorClass.prototype, kDistLockError, { value: true })
  }
  return ErrorClass
}

/** A bad argument or option (a TypeError): code `EINVALIDARG`. */
const InvalidArgumentError = defineError('InvalidArgumentError', 'EINVALIDARG', TypeError)
/** Redis unreachable, connection dropped or no answer in time: `ECONNECTION`. */
const ConnectionError = defineError('ConnectionError', 'ECONNECTION')
/** Redis answered with an error (OOM, read-only, ...): `EREDIS`. */
const RedisError = defineError('RedisError', 'EREDIS')
/** The lock is no longer held by its owner: `ELOCKLOST`. */
const LockLostError = defineError('LockLostError', 'ELOCKLOST')
/** The lock manager was closed: `ECLOSED`. */
const ClosedError = defineError('ClosedError', 'ECLOSED')
/** A grant not acknowledged by enough replicas (`waitReplicas`): `ENOTREPLICATED`. */
const NotReplicatedError = defineError('NotReplicatedError', 'ENOTREPLICATED')
/**
 * The caller's AbortSignal aborted an acquire: `ABORT_ERR`, name
 * `AbortError` (as Node's own), the signal's reason as `cause`.
 */
const AbortError = defineError('AbortError', 'ABORT_ERR')
/**
 * The server may evict lock keys (or its eviction policy could not be read)
 * and `evictionPolicy: 'refuse'` forbids locking there: `EEVICTION`.
 */
const EvictionError = defineError('EvictionError', 'EEVICTION')
/** `using()` or `lock()` could not acquire the lock (attempts ran out): `ENOTACQUIRED`. */
const NotAcquiredError = defineError('NotAcquiredError', 'ENOTACQUIRED')

const errorClassByCode = {
  EINVALIDARG: InvalidArgumentError,
  ECONNECTION: ConnectionError,
  EREDIS: RedisError,
  ELOCKLOST: LockLostError,
  ECLOSED: ClosedError,
  ENOTREPLICATED: NotReplicatedError,
  EEVICTION: EvictionError,
  ENOTACQUIRED: NotAcquiredError,
  ABORT_ERR: AbortError,
}

/** Turns a rejection of the native core (`[CODE] message`) into its class. */
function fromNative(err) {
  const message = typeof err === 'string' ? err : err && err.message
  const match = /^\[([A-Z_]+)\] ([\s\S]*)$/.exec(message)
  const ErrorClass = match && errorClassByCode[match[1]]
  if (ErrorClass) return new ErrorClass(match[2])
  // A value napi itself refused: only reachable by bypassing index.js.
  if (err && err.code === 'InvalidArg') return new InvalidArgumentError(err.message)
  // Anything else is a bug of dist-lock: still a DistLockError, with a code.
  return new DistLockError(match ? match[2] : String(message), match ? match[1] : 'EINTERNAL', {
    cause: typeof err === 'string' ? undefined : err,
  })
}

function invalid(message) {
  return new InvalidArgumentError(message)
}

function describe(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return `the string ${JSON.stringify(value.slice(0, 40))}`
  if (typeof value === 'object') return 'an object'
  return `${typeof value} ${String(value)}`
}


// The error classes of the public API (index.js exports each by name).
const ERROR_CLASSES = {
  DistLockError,
  InvalidArgumentError,
  ConnectionError,
  RedisError,
  LockLostError,
  ClosedError,
  NotReplicatedError,
  EvictionError,
  NotAcquiredError,
  AbortError,
}

module.exports = {
  ...ERROR_CLASSES,
  ERROR_CLASSES,
  fromNative,
  invalid,
  describe,
}
