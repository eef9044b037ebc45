'use strict'

// A worker process of the chaos tests (chaos.test.js).
//
//   node worker.js '<json config>'
//
// Runs `tasks` concurrent tasks until `durationMs` after `startAt` (a time on
// the common clock below). Each task loops:
//
//   acquire(one of `resources`) -> record acquiredAt, fencingToken, validUntil
//   -> critical section: GET the resource's counter (a plain ioredis client
//      connected DIRECTLY to Redis, not through the proxy), wait a little,
//      SET it to value + 1; each step only while lock.isValid() holds and
//      lock.signal is not aborted, else the section is "skipped-lost"
//   -> record validUntil (the last the holder knew), releasedAt (when it
//      called release), the release result
//
// and prints one JSON line per iteration on stdout (a record of type 'op'),
// after a first line { type: 'start' } and before a last line { type: 'done' }.
// A SET whose outcome is unknown (dropped connection) is read back while the
// lock is still valid: "done", "write-failed", or else "write-unknown". Errors of acquire and release are recorded by
// their `err.code`; nothing is thrown out. A call that does not settle within
// `watchdogMs` is recorded as "hung" and ends its task.
//
// Common clock: performance.timeOrigin + performance.now(), comparable across
// the processes of one host; lock.validUntil (on the performance.now() clock
// of this process) is converted to it by adding performance.timeOrigin. The
// start and done lines carry `clockOffset` (this clock minus the host's
// monotonic clock), with which the checker undoes wall-clock steps between
// the workers' starts.

const { performance } = require('node:perf_hooks')
const { setTimeout: sleep } = require('node:timers/promises')
const Redis = require('ioredis')
const distLock = require('../..')

const config = JSON.parse(process.argv[2])
const {
  workerId,
  lockUrl,
  counterUrl,
  resources,
  counterPrefix,
  tasks,
  startAt,
  durationMs,
  manager: managerOptions,
  acquire: acquireOptions,
  workMs = [1, 5],
  longWorkMs = 0,
  longWorkRate = 0,
  errorPauseMs = [20, 60],
  watchdogMs = 20_000,
  counterTimeoutMs = 3_000,
} = config

const now = () => performance.timeOrigin + performance.now()
const randInt = ([min, max]) => min + Math.floor(Math.random() * (max - min + 1))
const hrMs = () => Number(process.hrtime.bigint()) / 1e6
// this clock minus the monotonic clock. One reading between two monotonic
// readings; a reading taken while the process was descheduled (or while a
// first call compiled) would be off by that pause, which skews every time of
// this worker against the others, so the tightest of many brackets is kept.
function clockOffset() {
  let best = { gap: Infinity, offset: 0 }
  for (let i = 0; i < 200; i++) {
    const before = hrMs()
    const at = now()
    const after = hrMs()
    const gap = after - before
    if (gap < best.gap) best = { gap, offset: at - (before + after) / 2 }
  }
  return best.offset
}
const counterKey = (resource) => `${counterPrefix}${resource}`

function print(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`)
}

function describeError(err) {
  return {
    code: err && err.code !== undefined ? String(err.code) : `uncoded:${err && err.name}`,
    message: String(err && err.message).slice(0, 300),
    isDistLockError: err instanceof distLock.DistLockError,
  }
}

const HUNG = Symbol('hung')
/** Resolves to { value } / { err } / HUNG (not settled within watchdogMs). */
function watched(promise) {
  let timer
  const watchdog = new Promise((resolve) => {
    timer = setTimeout(resolve, watchdogMs, HUNG)
  })
  return Promise.race([promise.then((value) => ({ value }), (err) => ({ err })), watchdog]).finally(() =>
    clearTimeout(timer),
  )
}

// The counter client: straight to Redis, never queues commands while
// disconnected, never resends one after a reconnect (a late write would be
// a write outside the lock that the harness itself made).
const counter = new Redis(counterUrl, {
  connectionName: 'chaos-counter',
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  maxRetriesPerRequest: 0,
  commandTimeout: counterTimeoutMs,
  retryStrategy: () => 50,
  lazyConnect: false,
})
counter.on('error', () => {}) // reported per command

const manager = distLock(lockUrl, managerOptions)

function stillHeld(lock) {
  return lock.isValid() && !lock.signal.aborted
}

/** After a SET whose outcome is unknown: read back while still holding the lock. */
async function resolveWrite(lock, key, written) {
  for (let i = 0; i < 3 && stillHeld(lock); i++) {
    await sleep(30)
    if (!stillHeld(lock)) break
    try {
      const v = Number((await counter.get(key)) ?? 0)
      if (v === written) return 'done'
      if (v === written - 1) return 'write-failed'
      return 'write-unknown'
    } catch {
      // try again
    }
  }
  return 'write-unknown'
}

async function criticalSection(lock, resource, rec) {
  const key = counterKey(resource)
  if (!stillHeld(lock)) {
    rec.section = 'skipped-lost'
    return
  }
  let read
  try {
    read = Number((await counter.get(key)) ?? 0)
  } catch (err) {
    rec.section = 'read-failed'
    rec.sectionError = String(err.message).slice(0, 200)
    return
  }
  rec.readAt = now()
  rec.read = read
  const long = longWorkRate > 0 && Math.random() < longWorkRate
  await sleep(long ? longWorkMs : randInt(workMs))
  if (!stillHeld(lock)) {
    rec.section = 'skipped-lost'
    return
  }
  rec.writeAt = now()
  try {
    await counter.set(key, read + 1)
    rec.writtenAt = now()
    rec.section = 'done'
  } catch (err) {
    rec.sectionError = String(err.message).slice(0, 200)
    // An error reply (OOM...): the SET was not applied. Anything else (a
    // dropped connection, a timeout): read back to find out.
    rec.section = err.name === 'ReplyError' ? 'write-failed' : await resolveWrite(lock, key, read + 1)
    if (rec.section === 'done') rec.writtenAt = now()
  }
}

const stats = { iterations: 0, hung: 0 }

async function task(taskId) {
  let seq = 0
  while (now() < startAt + durationMs) {
    const resource = resources[Math.floor(Math.random() * resources.length)]
    const rec = { type: 'op', worker: workerId, task: taskId, seq: seq++, resource }
    stats.iterations++
    rec.acquireStart = now()
    const acquired = await watched(manager.acquire(resource, acquireOptions))
    rec.acquireEnd = now()
    rec.acquireMs = rec.acquireEnd - rec.acquireStart
    if (acquired === HUNG) {
      rec.outcome = 'hung'
      rec.hungIn = 'acquire'
      stats.hung++
      print(rec)
      return // the call may still settle later: this task stops here
    }
    if (acquired.err) {
      const e = describeError(acquired.err)
      rec.outcome = e.code
      rec.error = e
      print(rec)
      await sleep(randInt(errorPauseMs))
      continue
    }
    const lock = acquired.value
    if (lock === false) {
      rec.outcome = 'not-acquired'
      print(rec)
      continue
    }
    rec.acquiredAt = rec.acquireEnd
    rec.token = lock.fencingToken
    rec.attempts = lock.acquiredOnAttempt
    rec.validUntilAtGrant = performance.timeOrigin + lock.validUntil
    lock.on('lost', (err) => {
      rec.lostAt = now()
      rec.lost = describeError(err)
    })
    await criticalSection(lock, resource, rec)
    // The last validity the holder knew, read just before it lets go.
    rec.validUntil = performance.timeOrigin + lock.validUntil
    rec.releasedAt = now()
    const released = await watched(lock.release())
    rec.releaseEnd = now()
    rec.releaseMs = rec.releaseEnd - rec.releasedAt
    if (released === HUNG) {
      rec.release = 'hung'
      rec.outcome = 'hung'
      rec.hungIn = 'release'
      stats.hung++
      print(rec)
      return
    }
    if (released.err) {
      rec.release = describeError(released.err).code
      rec.releaseError = describeError(released.err)
      rec.outcome = rec.release
    } else {
      rec.release = released.value ? 'ok' : 'released-false'
      rec.outcome = rec.release
    }
    print(rec)
  }
}

async function main() {
  const wait = startAt - now()
  if (wait > 0) await sleep(wait)
  // This process's common clock minus the host's monotonic clock: the same
  // in every process unless the wall clock was stepped in between (the
  // checker compares them).
  print({ type: 'start', worker: workerId, at: now(), pid: process.pid, clockOffset: clockOffset() })
  await Promise.all(Array.from({ length: tasks }, (_, i) => task(i)))
  const closedAt = now()
  await manager.close()
  counter.disconnect()
  print({ type: 'done', worker: workerId, at: closedAt, clockOffset: clockOffset(), ...stats })
  // A hung call was recorded; close() should have ended it, but do not let
  // it keep this process alive past its report.
  if (stats.hung > 0) process.exit(0)
}

main().catch((err) => {
  process.stderr.write(`worker ${workerId} failed: ${err && err.stack}\n`)
  process.exitCode = 1
})
