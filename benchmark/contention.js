'use strict'

// The task loop of the contention workloads (W3 in one process, W4 in each
// child): every task acquires the one key, runs the critical section,
// releases, and asks again, until `endAt`. Acquires still waiting at `endAt`
// are granted and run their critical section too (the drain), so that every
// grant is counted and the waits still open are closed.

const { now, sleep, sleepUntil } = require('./time.js')

/** A quick acquire/release on a key of its own: connections and scripts ready. */
async function warmUp(instance, key, cycles = 20) {
  for (let i = 0; i < cycles; i++) await instance.release(await instance.acquire(key))
}

/**
 * Runs `taskIds.length` tasks on `key` from `startAt` to `endAt`; each grant
 * runs `critical()` (by default: hold 1 ms). Resolves with one event
 * `{ task, callAt, grantAt, releaseAt }` per grant and the number of grants
 * that found another task of this process holding the lock (`overlaps`,
 * a correctness failure).
 */
async function runTasks({ instance, key, taskIds, startAt, endAt, critical = () => sleep(1) }) {
  const events = []
  let holder = null
  let overlaps = 0
  await sleepUntil(startAt)
  await Promise.all(
    taskIds.map(async (task) => {
      while (now() < endAt) {
        const callAt = now()
        const handle = await instance.acquire(key)
        const grantAt = now()
        if (holder !== null) overlaps++
        holder = task
        await critical()
        holder = null
        await instance.release(handle)
        events.push({ task, callAt, grantAt, releaseAt: now() })
      }
    }),
  )
  return { events, overlaps }
}

module.exports = { warmUp, runTasks }
