'use strict'

// W3: 16 tasks in this process on one key, each acquire → hold 1 ms →
// release → again, for a fixed duration. Grants/s, handoff latency, the
// share of grants that went back to the task that had just released, tasks
// with no grant, the longest wait, Redis commands (and requests) per grant.

const { warmUp, runTasks } = require('./contention.js')
const { resetStats, commandStats, totalCalls, requestCalls } = require('./commands.js')
const { analyseGrants } = require('./stats.js')
const { now, sleepUntil, withTimeout } = require('./time.js')

const TASKS = 16
const DRAIN_LIMIT_MS = 15_000

async function run({ lib, url, admin, key, ttl, retryDelay, duration }) {
  const instance = lib.create(url, { ttl, retryDelay })
  try {
    await warmUp(instance, `${key}:warm`)
    await resetStats(admin)
    const startAt = now() + 5
    const endAt = startAt + duration
    const taskIds = Array.from({ length: TASKS }, (_, i) => i)
    const callsAtEnd = sleepUntil(endAt).then(() => commandStats(admin))
    const { events, overlaps } = await withTimeout(
      runTasks({ instance, key, taskIds, startAt, endAt }),
      duration + DRAIN_LIMIT_MS,
      `W3 ${lib.name}`,
    )
    const calls = await callsAtEnd
    const result = analyseGrants(events, { tasks: taskIds, startAt, endAt })
    return {
      ...result,
      overlaps,
      grantsCounted: result.grants,
      cmdsPerGrant: totalCalls(calls) / result.grants,
      reqsPerGrant: requestCalls(calls, instance.sent) / result.grants,
      calls,
    }
  } finally {
    await instance.close()
  }
}

module.exports = { run }
