'use strict'

// W4: 4 child processes × 4 tasks on one key, acquire → critical section →
// release → again, for a fixed duration. The critical section increments a
// counter in Redis non-atomically (GET, hold 1 ms, SET, through a plain
// ioredis client of its own): with mutual exclusion the counter ends equal to
// the number of grants, any other value is a correctness failure. Grants/s,
// handoffs, per-task shares (min and max relative to the mean), the longest
// wait, the share of grants that stayed in the process of the previous
// holder, Redis commands per grant (the counter's GET and SET left out).
//
// The 4 children are kept from one run to the next (a pool); each run creates
// and closes its library instance in them.

const Redis = require('ioredis')
const { Child } = require('./children.js')
const { library } = require('./adapters.js')
const { warmUp, runTasks } = require('./contention.js')
const { resetStats, commandStats, totalCalls, requestCalls } = require('./commands.js')
const { analyseGrants } = require('./stats.js')
const { now, sleep, sleepUntil } = require('./time.js')

const PROCESSES = 4
const TASKS_PER_PROCESS = 4
const DRAIN_LIMIT_MS = 15_000

// ---- parent side

let pool = null

async function getPool() {
  if (pool === null) pool = Array.from({ length: PROCESSES }, () => new Child())
  return pool
}

/** Stops the children (the run's end, or after a failed run). */
async function stopPool() {
  const children = pool || []
  pool = null
  await Promise.all(children.map((c) => c.kill()))
}

async function run({ lib, url, admin, key, ttl, retryDelay, duration }) {
  const children = await getPool()
  const counterKey = `${key}:counter`
  try {
    await Promise.all(
      children.map((c, p) =>
        c.ask('w4:prepare', { libId: lib.id, url, key, counterKey, ttl, retryDelay, proc: p }, 20_000),
      ),
    )
    await admin.set(counterKey, 0)
    await resetStats(admin)
    const startAt = now() + 100 // the start message reaches every child first
    const endAt = startAt + duration
    const callsAtEnd = sleepUntil(endAt).then(() => commandStats(admin))
    const results = await Promise.all(
      children.map((c) => c.ask('w4:go', { startAt, endAt }, duration + 100 + DRAIN_LIMIT_MS)),
    )
    const calls = await callsAtEnd
    const counter = Number(await admin.get(counterKey))
    const events = results.flatMap((r) => r.events)
    const taskIds = children.flatMap((_, p) => Array.from({ length: TASKS_PER_PROCESS }, (_, t) => `${p}:${t}`))
    const groupOf = (task) => task.split(':')[0] // the task's process
    const result = analyseGrants(events, { tasks: taskIds, startAt, endAt, groupOf })
    // The counter's own GET and SET, one each per grant in the window.
    for (const name of ['get', 'set']) calls[name] = Math.max(0, (calls[name] || 0) - result.grants)
    return {
      ...result,
      overlaps: results.reduce((n, r) => n + r.overlaps, 0),
      totalGrants: events.length,
      counter,
      counterOk: counter === events.length,
      grantsCounted: result.grants,
      cmdsPerGrant: totalCalls(calls) / result.grants,
      reqsPerGrant: requestCalls(calls, results[0].sent) / result.grants,
      calls,
    }
  } catch (err) {
    await stopPool() // unknown state: new children next time
    throw err
  }
}

// ---- child side

const childOps = {
  async 'w4:prepare'({ libId, url, key, counterKey, ttl, retryDelay, proc }, state) {
    const instance = library(libId).create(url, { ttl, retryDelay })
    const counter = new Redis(url)
    await counter.ping()
    await warmUp(instance, `${key}:warm:${proc}`)
    state.w4 = { instance, counter, key, counterKey, proc }
  },
  async 'w4:go'({ startAt, endAt }, state) {
    const { instance, counter, key, counterKey, proc } = state.w4
    state.w4 = null
    try {
      const taskIds = Array.from({ length: TASKS_PER_PROCESS }, (_, t) => `${proc}:${t}`)
      const critical = async () => {
        const value = Number(await counter.get(counterKey))
        await sleep(1)
        await counter.set(counterKey, value + 1)
      }
      const { events, overlaps } = await runTasks({ instance, key, taskIds, startAt, endAt, critical })
      return { events, overlaps, sent: instance.sent }
    } finally {
      await instance.close()
      counter.disconnect()
    }
  },
}

module.exports = { run, stopPool, childOps }
