'use strict'

// The lock manager: acquire (with its waiting options, AbortSignal and the
// 2.0.x owner form), lock(), using(), isLocked(), close(), and the events
// and stats of lib/observe.js. Defaults, range checks, validity and
// auto-extension live in the Rust core.

const { EventEmitter } = require('node:events')
const { performance } = require('node:perf_hooks')
const { AbortError, NotAcquiredError, fromNative, invalid, describe } = require('./errors.js')
const { Stats, debugEnabled, traceLine } = require('./observe.js')
const { ACQUIRE_OPTIONS, MANAGER_OPTIONS, checkOptions, checkResourceName } = require('./options.js')
const { resolveConnection } = require('./connection.js')
const { checkCallback, settle } = require('./callbacks.js')
const { acquireArguments } = require('./compat.js')
const { Core } = require('./core.js')
const { Lock, kManagerClosed } = require('./lock.js')

function abortError(signal) {
  return new AbortError('the acquisition was aborted', { cause: signal.reason })
}

// The error codes reported as 'error' events (and counted by stats()).
const REPORTED_ERRORS = new Set(['ECONNECTION', 'EREDIS', 'ENOTREPLICATED', 'EINTERNAL'])

// Node's one warning per process about servers that may evict lock keys
// (each manager also emits a 'warning' event per server and connection).
let evictionWarned = false

// ---------------------------------------------------------------------------
// Lock manager

/**
 * A lock manager bound to one Redis server. It is an EventEmitter:
 * `'acquired'`, `'notAcquired'`, `'released'`, `'extended'`, `'lost'`,
 * `'error'` and `'warning'` (see the README's Observability section).
 */
class DistLock extends EventEmitter {
  #core
  #native
  #autoExtend
  #stats = new Stats()
  #trace = debugEnabled()
  #report = (event, data) => this.#observe(event, data)

  constructor(redis, options) {
    super()
    const connection = resolveConnection(redis)
    const opts = checkOptions(options, MANAGER_OPTIONS, 'options')
    const { connectTimeout, commandTimeout, autoExtend, ...lockOptions } = opts
    if (connectTimeout !== undefined) connection.connectTimeout = connectTimeout
    if (commandTimeout !== undefined) connection.commandTimeout = commandTimeout
    this.#autoExtend = autoExtend === true
    try {
      this.#core = new Core(connection, lockOptions)
    } catch (err) {
      throw fromNative(err)
    }
    this.#native = this.#core.native
    this.#native.onWarning((server, policy, maxmemory, message) =>
      this.#report('warning', { code: 'EEVICTION', server, policy, maxmemory, message }),
    )
  }

  /** The effective lock options (defaults filled in). */
  get options() {
    const { ttl, retryDelay, maxRetries, keyPrefix, waitReplicas, timeout, fair, driftFactor, evictionPolicy } =
      this.#native.options
    const out = { ttl, retryDelay, maxRetries, keyPrefix, autoExtend: this.#autoExtend, fair, driftFactor, evictionPolicy }
    if (timeout !== undefined && timeout !== null) out.timeout = timeout
    if (waitReplicas) out.waitReplicas = { ...waitReplicas }
    return out
  }

  /** Whether `close()` was called. */
  get closed() {
    return this.#native.closed
  }

  /**
   * Counts what happened since the manager was created, counts the calls in
   * flight (`pending`), and gives the wait of recent grants (`waitMs`: p50,
   * p99 and max over the last 1024).
   */
  stats() {
    return this.#stats.snapshot(this.#core.pending)
  }

  /** Counts, traces and emits one event. */
  #observe(event, data) {
    // Bad arguments, aborts and a closed manager are the caller's doing:
    // only failures of Redis or of dist-lock are 'error' events.
    if (event === 'error' && !REPORTED_ERRORS.has(data.error?.code)) return
    const stats = this.#stats
    switch (event) {
      case 'acquired':
        stats.acquired += 1
        if (data.attempts > 1) stats.contended += 1
        stats.wait(data.waitMs)
        break
      case 'notAcquired':
        stats.notAcquired += 1
        break
      case 'aborted':
        stats.aborted += 1
        break
      case 'released':
        stats.released += 1
        break
      case 'extended':
        if (data.auto) stats.autoExtended += 1
        else stats.extended += 1
        break
      case 'lost':
        stats.lost += 1
        break
      case 'error':
        if (data.error.code === 'ECONNECTION' || data.error.code === 'EREDIS') stats.redisErrors += 1
        break
    }
    if (this.#trace) process.stderr.write(traceLine(event, data))
    if (event === 'aborted') return
    if (event === 'warning' && !evictionWarned) {
      evictionWarned = true
      process.emitWarning(data.message, { type: 'DistLockWarning', code: 'DIST_LOCK_EVICTION' })
    }
    if (event === 'error') {
      // Every error also reaches the caller; unlike most emitters, an 'error'
      // nobody listens to is not thrown.
      if (this.listenerCount('error') > 0) this.emit('error', data.error, data)
      return
    }
    if (this.listenerCount(event) > 0) this.emit(event, data)
  }

  /** Reports a failed call (not bad arguments, not aborts or a closed manager). */
  #failed(op, resource, err) {
    this.#report('error', { resource, op, error: err })
  }

  /**
   * Acquires the lock of `resourceName`: waits (woken by releases, polling
   * every `retryDelay` ms) until granted, and gives a `Lock`; or `false` when
   * `maxRetries` or `timeout` ran out. `options` (ttl, retryDelay,
   * maxRetries, timeout, fair, autoExtend, waitReplicas, signal) apply to
   * this call only. With a callback, calls it with (err, lock) and returns
   * undefined; otherwise returns a promise. 2.0.x's `acquire(name, owner[,
   * callback])` is accepted too (see lib/compat.js).
   */
  acquire(resourceName, options, callback) {
    const args = acquireArguments(options, callback)
    checkCallback(args.callback)
    const acquired = args.error ? Promise.reject(args.error) : this.#acquire(resourceName, args.options)
    return settle(acquired, args.callback)
  }

  /**
   * `acquire`, except that it never gives `false`: when the wait allowed by
   * `maxRetries` or `timeout` runs out, it rejects with `NotAcquiredError`.
   */
  lock(resourceName, options, callback) {
    const args = acquireArguments(options, callback)
    checkCallback(args.callback)
    const acquired = args.error
      ? Promise.reject(args.error)
      : this.#acquire(resourceName, args.options).then((lock) => lock || Promise.reject(notAcquired(resourceName)))
    return settle(acquired, args.callback)
  }

  #acquire(resourceName, options) {
    let autoExtend = this.#autoExtend
    let signal
    let nativeOptions
    if (options !== undefined) {
      let opts
      try {
        opts = checkOptions(options, ACQUIRE_OPTIONS, 'options')
      } catch (err) {
        return Promise.reject(err)
      }
      let callOptions
      ;({ autoExtend = autoExtend, signal, ...callOptions } = opts)
      if (Object.keys(callOptions).length > 0) nativeOptions = callOptions
    }
    const bad = checkResourceName(resourceName)
    if (bad) return Promise.reject(bad)
    const core = this.#core
    const report = this.#report
    const started = performance.now()
    const granted = (info) => {
      if (!info) {
        report('notAcquired', { resource: resourceName, waitMs: performance.now() - started })
        return false
      }
      const lock = new Lock(core, info, autoExtend, resourceName, report)
      report('acquired', {
        resource: resourceName,
        key: info.key,
        id: info.id,
        waitMs: info.acquireDelay,
        attempts: info.acquiredOnAttempt,
        fencingToken: info.fencingToken,
      })
      return lock
    }
    const failed = (err) => {
      if (err.code === 'ECONNECTION') core.settle()
      this.#failed('acquire', resourceName, err)
      throw err
    }
    if (signal === undefined) {
      return core.request((id) => core.native.acquire(id, resourceName, nativeOptions)).then(granted, failed)
    }
    if (signal.aborted) return Promise.reject(abortError(signal))
    let requestId
    const onAbort = () => core.native.cancel(requestId)
    signal.addEventListener('abort', onAbort, { once: true })
    return core
      .request((id) => {
        requestId = id
        core.native.acquire(id, resourceName, nativeOptions, true)
      })
      .then(
        (info) => {
          signal.removeEventListener('abort', onAbort)
          return granted(info)
        },
        (err) => {
          signal.removeEventListener('abort', onAbort)
          if (err.code === 'ABORT_ERR') {
            report('aborted', { resource: resourceName, waitMs: performance.now() - started })
            throw abortError(signal)
          }
          failed(err)
        },
      )
  }

  /**
   * Runs `fn(lock)` holding the lock of `resourceName` (auto-extended unless
   * `options.autoExtend` is false), releases it in every case, and returns
   * what `fn` returns (or rethrows what it throws). Pass `lock.signal` to
   * work that should stop if the lock is lost. Rejects with
   * `NotAcquiredError` if limited attempts ran out.
   */
  async using(resourceName, options, fn) {
    if (typeof options === 'function' && fn === undefined) {
      fn = options
      options = undefined
    }
    if (typeof fn !== 'function') {
      throw invalid(`argument "fn" must be a function, got ${describe(fn)}`)
    }
    const opts = checkOptions(options, ACQUIRE_OPTIONS, 'options')
    const lock = await this.#acquire(resourceName, { autoExtend: true, ...opts })
    if (lock === false) throw notAcquired(resourceName)
    try {
      return await fn(lock)
    } finally {
      // A failed release leaves the lock to expire after its ttl; the outcome
      // of fn is what the caller gets.
      await lock.release().catch(() => {})
    }
  }

  /** Whether anyone holds the lock of `resourceName`. */
  isLocked(resourceName, callback) {
    checkCallback(callback)
    const bad = checkResourceName(resourceName)
    const core = this.#core
    return settle(
      bad
        ? Promise.reject(bad)
        : core.request((id) => core.native.isLocked(id, resourceName)).catch((err) => {
            this.#failed('isLocked', resourceName, err)
            throw err
          }),
      callback,
    )
  }

  /**
   * Closes the connection to Redis. Pending acquires fail with
   * `ClosedError`, and so does every later call. Locks still held are not
   * released: they expire after their ttl (auto-extended ones report
   * 'lost'). Idempotent.
   */
  close(callback) {
    checkCallback(callback)
    this.#native.close()
    // Auto-extended locks are lost now, not when the native side reports it.
    for (const ref of [...this.#core.autoExtended]) ref.deref()?.[kManagerClosed]()
    this.#core.autoExtended.clear()
    return settle(Promise.resolve(), callback)
  }
}

/** The error of `using()` and `lock()` when the wait ran out. */
function notAcquired(resourceName) {
  return new NotAcquiredError(
    `lock for "${resourceName}" was not acquired: the wait allowed by maxRetries or timeout ran out`,
  )
}

module.exports = { DistLock }
