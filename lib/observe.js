'use strict'

// What a lock manager tells about itself: counters and wait percentiles for
// `stats()`, and the trace printed on stderr when DEBUG names dist-lock.

const { inspect } = require('node:util')

/** How many recent waits the percentiles of `stats()` are taken over. */
const WAIT_SAMPLES = 1024

/**
 * Whether the `DEBUG` environment variable turns the trace on, as in the
 * `debug` convention: a comma- or space-separated list of names, `*` as a
 * wildcard, and `-name` to exclude (`DEBUG=dist-lock`, `DEBUG=*`,
 * `DEBUG=*,-dist-lock`).
 */
function debugEnabled(value = process.env.DEBUG) {
  if (typeof value !== 'string' || value === '') return false
  let on = false
  for (const raw of value.split(/[\s,]+/)) {
    if (raw === '') continue
    const exclude = raw.startsWith('-')
    const pattern = exclude ? raw.slice(1) : raw
    const re = new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`)
    if (re.test('dist-lock')) {
      if (exclude) return false
      on = true
    }
  }
  return on
}

/** The value at quantile `q` of sorted `values` (nearest rank). */
function quantile(sorted, q) {
  if (sorted.length === 0) return null
  const rank = Math.ceil(q * sorted.length) - 1
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank))]
}

const round = (ms) => Math.round(ms * 1000) / 1000

/** Counters of one lock manager. */
class Stats {
  acquired = 0
  contended = 0
  notAcquired = 0
  aborted = 0
  released = 0
  extended = 0
  autoExtended = 0
  lost = 0
  redisErrors = 0
  #waits = new Float64Array(WAIT_SAMPLES)
  #count = 0

  /** Records the wait of a granted acquire. */
  wait(ms) {
    this.#waits[this.#count % WAIT_SAMPLES] = ms
    this.#count += 1
  }

  snapshot(pending) {
    const n = Math.min(this.#count, WAIT_SAMPLES)
    const sorted = Array.from(this.#waits.subarray(0, n)).sort((a, b) => a - b)
    return {
      acquired: this.acquired,
      contended: this.contended,
      notAcquired: this.notAcquired,
      aborted: this.aborted,
      released: this.released,
      extended: this.extended,
      autoExtended: this.autoExtended,
      lost: this.lost,
      redisErrors: this.redisErrors,
      pending,
      waitMs: {
        samples: n,
        p50: n ? round(quantile(sorted, 0.5)) : null,
        p99: n ? round(quantile(sorted, 0.99)) : null,
        max: n ? round(sorted[n - 1]) : null,
      },
    }
  }
}

/** One line of the trace: `dist-lock <event> "<resource>" key=value ...`. */
function traceLine(event, data) {
  const { resource, error, ...rest } = data
  const parts = [`dist-lock ${event}`]
  if (resource !== undefined) parts.push(JSON.stringify(resource))
  for (const [k, v] of Object.entries(rest)) {
    if (v === undefined) continue
    parts.push(`${k}=${typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(2) : v}`)
  }
  if (error !== undefined) parts.push(`error=${inspect(error.code)} ${JSON.stringify(error.message)}`)
  return `${new Date().toISOString()} ${parts.join(' ')}\n`
}

module.exports = { Stats, debugEnabled, traceLine, WAIT_SAMPLES }
