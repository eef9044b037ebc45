'use strict'

// A granted lock: its JS faces (AbortSignal, 'lost' event, async dispose,
// the callback form) over the native lock state of lib/core.js. Validity and
// auto-extension are computed in the Rust core.

const { EventEmitter } = require('node:events')
const { inspect } = require('node:util')
const { performance } = require('node:perf_hooks')
const { LockLostError, fromNative, invalid, describe } = require('./errors.js')
const { checkCallback, settle } = require('./callbacks.js')

// The longest delay setTimeout accepts.
const MAX_TIMER_MS = 2 ** 31 - 1

// Marks an auto-extended lock lost because its manager closed (a method
// only the manager calls).
const kManagerClosed = Symbol('dist-lock.managerClosed')

// A Lock that was garbage-collected unreleased: its native state goes (and
// its auto-extension stops, so it expires after its ttl).
const forgotten = new FinalizationRegistry(({ native, handle }) => native.dropLock(handle))

/**
 * A granted lock. Emits `'lost'` (with a `LockLostError`) once if the lock is
 * found lost while its holder has not released it; `signal` aborts then too.
 */
class Lock extends EventEmitter {
  #core
  #handle
  #controller = null
  #lostError = null
  #expiryTimer = null
  #watched = false
  #released = false
  #ref = null
  // Registering a 'lost' listener (by any of EventEmitter's methods) starts
  // watching the lock's validity too.
  #onNewListener = (event) => {
    if (event === 'lost') this.#watch()
  }

  #report
  #grantedAt

  constructor(core, info, autoExtend, resource, report) {
    super()
    this.on('newListener', this.#onNewListener)
    this.#core = core
    this.#handle = info.handle
    this.#report = report
    this.#grantedAt = performance.now()
    /** The resource name given to `acquire`. */
    this.resource = resource
    /** The unique ID of the lock (UUID v4), the value of its key in Redis. */
    this.id = info.id
    /** The key of the lock in Redis (`keyPrefix + resourceName`). */
    this.key = info.key
    /** The number of attempts made to acquire the lock. */
    this.acquiredOnAttempt = info.acquiredOnAttempt
    /** Milliseconds from the `acquire` call to the grant. */
    this.acquireDelay = info.acquireDelay
    /** Strictly increasing per resource across all processes (a number, exact up to 2^53 - 1). */
    this.fencingToken = info.fencingToken ?? null
    /** Whether the lock extends itself until released. */
    this.autoExtend = autoExtend
    forgotten.register(this, { native: core.native, handle: info.handle }, this)
    if (autoExtend) {
      this.#ref = new WeakRef(this)
      core.autoExtended.add(this.#ref)
      core.native.autoExtend(info.handle, (kind, message) => this.#autoExtendEvent(kind, message))
    }
  }

  /** What the native auto-extension reports: 0 extended, 1 failed (retried), 2 lost. */
  #autoExtendEvent(kind, message) {
    if (kind === 0) {
      if (!this.#released) this.#report('extended', this.#describe({ auto: true }))
    } else if (kind === 1) {
      this.#report('error', this.#describe({ op: 'autoExtend', error: fromNative(message) }))
    } else {
      this.#markLost(fromNative(message))
    }
  }

  /** The lock's identity, for events, with `extra` fields. */
  #describe(extra) {
    return { resource: this.resource, key: this.key, id: this.id, ...extra }
  }

  #remaining() {
    return this.#core.native.remainingValidity(this.#handle)
  }

  /**
   * Until when the lock is surely held, in milliseconds on the
   * `performance.now()` clock: from the moment the granting (or last
   * extending) command was sent, plus its TTL, less a clock-drift allowance.
   */
  get validUntil() {
    return performance.now() + this.#remaining()
  }

  /** Whether the lock is still surely held (not released, not lost, not expired). */
  isValid() {
    return this.#lostError === null && !this.#released && this.#remaining() > 0
  }

  /** Whether the lock was found lost (or, without auto-extension, expired). */
  get lost() {
    if (this.#lostError === null && !this.#released && !this.autoExtend && this.#remaining() <= 0) {
      this.#markLost(this.#expired())
    }
    return this.#lostError !== null
  }

  #expired() {
    return new LockLostError(`lock "${this.key}" is lost: its ttl ran out`)
  }

  /** Whether `release()` was called (and did not fail). */
  get released() {
    return this.#released
  }

  /**
   * An AbortSignal that aborts, with a `LockLostError` as its reason, when the
   * lock is found lost: an auto-extension failed or came too late, `extend()`
   * found it gone, or (without auto-extension) its validity ran out.
   */
  get signal() {
    if (this.#controller === null) {
      this.#controller = new AbortController()
      if (this.#lostError !== null) this.#controller.abort(this.#lostError)
      this.#watch()
    }
    return this.#controller.signal
  }

  // Once somebody listens (signal or 'lost'), a lock that is not
  // auto-extended is reported lost when its validity runs out.
  #watch() {
    if (this.#watched) return
    this.#watched = true
    this.off('newListener', this.#onNewListener)
    if (!this.autoExtend && !this.#released) this.#armExpiry()
  }

  /** The manager closed: an auto-extended lock is no longer extended. */
  [kManagerClosed]() {
    this.#markLost(
      new LockLostError(`lock "${this.key}" is lost: the lock manager was closed, so the lock is no longer extended`),
    )
  }

  /** No longer auto-extended (released or lost): the manager forgets it. */
  #untrack() {
    if (this.#ref !== null) this.#core.autoExtended.delete(this.#ref)
    this.#ref = null
  }

  #markLost(err) {
    if (this.#lostError !== null || this.#released) return
    this.#untrack()
    this.#lostError = err
    this.#clearExpiry()
    this.#report('lost', this.#describe({ error: err }))
    if (this.#controller !== null) this.#controller.abort(err)
    this.emit('lost', err)
  }

  // An unref'd timer: it never keeps the process alive.
  #armExpiry() {
    this.#clearExpiry()
    const remaining = this.#remaining()
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = null
      if (this.#remaining() > 0) {
        this.#armExpiry() // extended meanwhile
      } else {
        this.#markLost(this.#expired())
      }
    }, // setTimeout holds at most 2^31 - 1 ms; a longer validity re-arms.
    Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(remaining))))
    this.#expiryTimer.unref()
  }

  #clearExpiry() {
    if (this.#expiryTimer !== null) {
      clearTimeout(this.#expiryTimer)
      this.#expiryTimer = null
    }
  }

  /**
   * Releases the lock if it is still ours (owner-checked): resolves `true` if
   * released, `false` if it had expired or was taken by someone else (whose
   * lock is left alone). A second call resolves `false`. Stops auto-extension.
   *
   * A release that is neither awaited nor given a callback never crashes the
   * process when it fails: the lock then expires after its ttl.
   */
  release(callback) {
    checkCallback(callback)
    const wasReleased = this.#released
    this.#released = true
    this.#clearExpiry()
    const core = this.#core
    const handle = this.#handle
    const promise = core.request((id) => core.native.release(id, handle))
    promise.then(
      (released) => {
        forgotten.unregister(this)
        this.#untrack()
        if (!wasReleased) {
          this.#report('released', this.#describe({ heldMs: performance.now() - this.#grantedAt, released }))
        }
      },
      (err) => {
        this.#report('error', this.#describe({ op: 'release', error: err }))
        if (wasReleased) return
        this.#released = false
        // Auto-extension stopped at the release: from now on the lock is
        // lost when its validity runs out, as without auto-extension.
        if (this.#lostError === null && (this.autoExtend || this.#watched)) this.#armExpiry()
      },
    ) // also makes a fire-and-forget release safe (see above)
    return settle(promise, callback)
  }

  /**
   * Resets the lock's TTL to `seconds` seconds (fractions allowed, ms
   * precision) if it is still ours; otherwise fails with `LockLostError`
   * (and the lock is marked lost). Auto-extension then renews this TTL.
   * Resolves `true` (1.0 called back a truthy value, which code may check).
   */
  extend(seconds, callback) {
    checkCallback(callback)
    let promise
    if (typeof seconds !== 'number') {
      promise = Promise.reject(invalid(`argument "seconds" must be a number, got ${describe(seconds)}`))
    } else if (this.#released) {
      promise = Promise.reject(new LockLostError(`lock "${this.key}" is lost: it was released`))
    } else {
      const core = this.#core
      const handle = this.#handle
      promise = core.request((id) => core.native.extend(id, handle, seconds)).then(
        () => {
          this.#report('extended', this.#describe({ ttl: Math.round(seconds * 1000), auto: false }))
          if (!this.#released && this.#expiryTimer !== null) this.#armExpiry()
          return true
        },
        (err) => {
          if (err.code === 'ELOCKLOST') this.#markLost(err)
          else this.#report('error', this.#describe({ op: 'extend', error: err }))
          throw err
        },
      )
    }
    return settle(promise, callback)
  }

  /** Asks Redis whether the lock is still held by this owner. */
  isHeld(callback) {
    checkCallback(callback)
    const core = this.#core
    const handle = this.#handle
    return settle(
      core.request((id) => core.native.isHeld(id, handle)),
      callback,
    )
  }

  [inspect.custom](depth, options) {
    const { resource, id, key, acquiredOnAttempt, acquireDelay, fencingToken, autoExtend } = this
    const state = { resource, id, key, acquiredOnAttempt, acquireDelay, fencingToken, autoExtend }
    return `Lock ${inspect(state, options)}`
  }

  /** `await using lock = await distLock.acquire(name)` releases at scope end. */
  async [Symbol.asyncDispose]() {
    await this.release()
  }
}

module.exports = { Lock, kManagerClosed }
