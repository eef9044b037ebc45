'use strict'

// W5: 16 tasks already waiting on one key when the holder leaves. 17 tasks
// take turns: the holder keeps the lock for 10 ms + a random part of
// retryDelay (so that a release does not fall in step with the waiters'
// polls), then releases it; the handoff latency runs from its release
// resolved to the next grant, which always goes to a waiting task since the
// releaser only asks again after that grant. So every release finds the 16
// others waiting. Repeated `handoffs` times; Redis commands (and requests)
// per grant are counted over these handoffs.

const { warmUp } = require('./contention.js')
const { resetStats, commandStats, totalCalls, requestCalls } = require('./commands.js')
const { percentile } = require('./stats.js')
const { now, sleep, withTimeout } = require('./time.js')

const WAITERS = 16
const FIRST_HOLD_MS = 100 // lets every waiter make its first attempt
const LIMIT_MS = 30_000

function deferred() {
  let resolve
  const promise = new Promise((r) => (resolve = r))
  return { promise, resolve }
}

async function handoffs({ instance, key, admin, retryDelay, count }) {
  const grants = [] // { task, grantAt, releaseAt }, in grant order
  let nextGrant = deferred()
  let holder = null
  let overlaps = 0
  let callsAtEnd = null

  async function task(t, first) {
    for (;;) {
      const handle = await instance.acquire(key)
      const grant = { task: t, grantAt: now(), releaseAt: null }
      if (holder !== null) overlaps++
      holder = t
      grants.push(grant)
      const n = grants.length - 1 // handoffs so far
      const granted = nextGrant
      nextGrant = deferred()
      granted.resolve()
      if (n === count) callsAtEnd = commandStats(admin)
      if (n >= count) {
        // Done: release at once, and so do the waiters still queued.
        holder = null
        await instance.release(handle)
        return
      }
      if (first && n === 0) {
        await sleep(FIRST_HOLD_MS)
        await resetStats(admin)
      } else {
        await sleep(10 + Math.random() * retryDelay)
      }
      const someoneElse = nextGrant.promise
      holder = null
      await instance.release(handle)
      grant.releaseAt = now()
      await someoneElse
      if (grants.length - 1 >= count) return
    }
  }

  const first = task(0, true)
  while (grants.length === 0) await sleep(1)
  const waiters = Array.from({ length: WAITERS }, (_, i) => task(i + 1, false))
  await Promise.all([first, ...waiters])
  const latencies = []
  for (let i = 1; i <= count; i++) latencies.push(Math.max(0, grants[i].grantAt - grants[i - 1].releaseAt))
  return { latencies, overlaps, calls: await callsAtEnd }
}

async function run({ lib, url, admin, key, ttl, retryDelay, count }) {
  const instance = lib.create(url, { ttl, retryDelay })
  try {
    await warmUp(instance, `${key}:warm`)
    const { latencies, overlaps, calls } = await withTimeout(
      handoffs({ instance, key, admin, retryDelay, count }),
      LIMIT_MS + count * (retryDelay + 100),
      `W5 ${lib.name}`,
    )
    return {
      handoffP50: percentile(latencies, 50),
      handoffP99: percentile(latencies, 99),
      handoffMax: Math.max(...latencies),
      overlaps,
      grantsCounted: count,
      cmdsPerGrant: totalCalls(calls) / count,
      reqsPerGrant: requestCalls(calls, instance.sent) / count,
      calls,
    }
  } finally {
    await instance.close()
  }
}

module.exports = { run }
