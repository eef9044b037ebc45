'use strict'

// The wake-up check shared by the topology suites: a waiter whose retryDelay
// is 10 s is granted within 2 s of the holder's release, so it was woken by
// the release message, not by its poll.

const assert = require('node:assert/strict')
const { performance } = require('node:perf_hooks')
const { sleep, within } = require('../helpers/util.js')

/**
 * `holder` takes `name`; `waiter` waits for it; the holder releases. Resolves
 * with the waiter's lock (still held: the caller checks and releases it).
 */
async function wokenAtRelease(holder, waiter, name) {
  const lock = await holder.acquire(name, { ttl: 30_000 })
  let grantedAt = null
  const waiting = waiter.acquire(name, { retryDelay: 10_000, timeout: 25_000 }).then((l) => {
    grantedAt = performance.now()
    return l
  })
  await sleep(500) // refused, subscribed, sleeping
  assert.equal(grantedAt, null, 'granted while held')
  const releasedAt = performance.now()
  assert.equal(await lock.release(), true)
  const next = await within(waiting, 5_000, 'the waiter')
  assert.ok(next, 'the waiter got no lock')
  const delay = grantedAt - releasedAt
  assert.ok(delay < 2_000, `granted ${Math.round(delay)} ms after the release`)
  return next
}

module.exports = { wokenAtRelease }
