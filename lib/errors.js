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

// The classes of the codes the native core reports (its code table is
// `errorCodes()` of the binding), and ENOTACQUIRED of the JS layer.
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

/**
 * Turns a failure of the native core into its class: a completion's
 * `{ code, message }` (the code travels as a number, no parsing), or the
 * `[CODE] message` text of a thrown constructor error or an auto-extension
 * event.
 */
function fromNative(err) {
  if (err && typeof err.code === 'string' && typeof err.message === 'string' && !(err instanceof Error)) {
    return coded(err.code, err.message, undefined)
  }
  const message = typeof err === 'string' ? err : err && err.message
  const match = /^\[([A-Z_]+)\] ([\s\S]*)$/.exec(message)
  if (match) return coded(match[1], match[2], typeof err === 'string' ? undefined : err)
  // A value napi itself refused: only reachable by bypassing index.js.
  if (err && err.code === 'InvalidArg') return new InvalidArgumentError(err.message)
  // Anything else is a bug of dist-lock: still a DistLockError, with a code.
  return new DistLockError(String(message), 'EINTERNAL', {
    cause: typeof err === 'string' ? undefined : err,
  })
}

/** The error of `code`: its class, or a DistLockError with that code. */
function coded(code, message, cause) {
  const ErrorClass = errorClassByCode[code]
  if (ErrorClass) return new ErrorClass(message)
  return new DistLockError(message, code, { cause })
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
