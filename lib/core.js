'use strict'

// Requests to the native core: JS picks a request id, the native call
// returns at once, and the outcomes come back in batches through the one
// callback given to the native manager (lib/completions.js). Requests in
// flight keep Node alive (setActive); an idle manager does not.

const { NativeLockManager } = require('./native.js')
const { decodeCompletions } = require('./completions.js')
const { fromNative } = require('./errors.js')


/**
 * A manager's native side. Each operation is a request: JS picks an id, the
 * native call returns at once, and the outcomes come back in batches through
 * the one callback given to the native manager (lib/completions.js).
 */
class Core {
  /** WeakRefs of the auto-extended locks not yet released or lost. */
  autoExtended = new Set()
  #pending = new Map()
  // The ids of the settle() requests among them.
  #background = new Set()
  #lastId = 0
  #each = (id, err, value) => this.#done(id, err, value)

  constructor(connection, options) {
    this.native = new NativeLockManager(connection, options, (records, text) =>
      decodeCompletions(records, text, this.#each),
    )
  }

  #done(id, err, value) {
    const request = this.#pending.get(id)
    if (request === undefined) return
    this.#pending.delete(id)
    this.#background.delete(id)
    if (this.#pending.size === 0) this.native.setActive(false)
    if (err != null) request.reject(fromNative(err))
    else request.resolve(value)
  }

  /** Requests in flight (the user's). */
  get pending() {
    return this.#pending.size - this.#background.size
  }

  /**
   * After an acquire failed on the connection: keeps Node alive, like a
   * request in flight, until the native cleanup behind that attempt is done,
   * for at most connectTimeout + commandTimeout.
   */
  settle() {
    this.request((id) => {
      this.#background.add(id)
      this.native.settle(id)
    }).catch(() => {})
  }

  /** Starts `start(id)` and returns the promise of its outcome. */
  request(start) {
    this.#lastId = (this.#lastId + 1) >>> 0
    const id = this.#lastId
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      // Requests in flight keep Node alive; an idle manager does not.
      if (this.#pending.size === 1) this.native.setActive(true)
      try {
        start(id)
      } catch (err) {
        // A value the native side refused (lib/options.js checks types first).
        this.#done(id, err)
      }
    })
  }
}

module.exports = { Core }
