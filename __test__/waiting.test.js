'use strict'

// Waiting for a lock: wake-ups on release (Redis pub/sub) and on TTL expiry,
// the shared subscription connection, the local FIFO queue per key, fair mode
// across processes (and its crashed waiters), and the per-call options
// timeout / signal / maxRetries. Functional tests: timings are loose bounds
// only (the machine may be busy), they show that a waiter did not sleep out a
// 10 s retryDelay.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')
const Redis = require('ioredis')
const distLock = require('..')
const { startRedis } = require('./helpers/redis-server.js')
const { sleep, managerPool, uniqueNames, spawnNode, commandCalls } = require('./helpers/util.js')

const { AbortError, InvalidArgumentError } = distLock

const fairWaiter = path.join(__dirname, 'fixtures', 'fair-waiter.js')

let server
let redis // an ioredis client, to look at Redis directly (never blocks the event loop)
const managers = managerPool()
const children = new Set()

before(async () => {
  server = await startRedis()
  redis = new Redis(server.url, { lazyConnect: false, maxRetriesPerRequest: 1 })
})

after(async () => {
  managers.closeAll()
  for (const child of children) child.kill('SIGKILL')
  redis.disconnect()
  await server.stop()
})

// ---------------------------------------------------------------------------
// Helpers

function manager(urlOrOptions, options) {
  return typeof urlOrOptions === 'string'
    ? managers.open(urlOrOptions, options)
    : managers.open(server.url, urlOrOptions)
}

function closeAll(...ms) {
  managers.close(...ms)
}

const keyOf = (name) => `lock:${name}`
const channelOf = (name) => `{lock:${name}}:released`
const queueOf = (name) => `{lock:${name}}:queue`
const deadlinesOf = (name) => `{lock:${name}}:queue:deadlines`
/** The key that keeps a held lock's fencing token (default keyPrefix). */
const tokenOf = (name) => `{lock:}:token:lock:${name}`

/** A resource name of its own for each test. */
const uniqueName = uniqueNames('wait')

/** Polls `check` (async ok) until it returns a truthy value; rejects after `timeoutMs`. */
async function waitUntil(check, { timeoutMs = 5_000, intervalMs = 10, what = 'condition' } = {}) {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value) return value
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(intervalMs)
  }
}

/** The channels somebody is subscribed to on the test server. */
async function subscribedChannels() {
  return (await redis.pubsub('CHANNELS')).sort()
}

/** The clients of type pubsub on the test server (CLIENT LIST TYPE pubsub). */
async function pubsubClients() {
  const text = await redis.client('LIST', 'TYPE', 'pubsub')
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => Object.fromEntries(line.split(' ').map((kv) => kv.split('=', 2))))
}

/** Resolves once `name`'s channel is subscribed to by somebody (the waiter waits). */
function waitSubscribed(name, timeoutMs = 5_000) {
  return waitUntil(async () => (await subscribedChannels()).includes(channelOf(name)), {
    timeoutMs,
    what: `a subscription to ${channelOf(name)}`,
  })
}

async function queueLength(name) {
  return redis.zcard(queueOf(name))
}

function waitQueued(name, n, timeoutMs = 10_000) {
  return waitUntil(async () => (await queueLength(name)) >= n, {
    timeoutMs,
    what: `${n} entries in ${queueOf(name)}`,
  })
}

/** Keys on the server that belong to resource `name` (lock, token, queue...). */
async function keysOf(name) {
  const all = await redis.keys('*')
  return all.filter((k) => k.includes(`lock:${name}`)).sort()
}

/** Calls per command since the last CONFIG RESETSTAT: { evalsha: n, set: n, ... }. */
async function commandStats() {
  return commandCalls(await redis.info('commandstats'))
}

/** Spawns the fair-waiter fixture; `result` resolves to its JSON line and exit status. */
function startFairWaiter(name, label, { retryDelay = 10_000, holdMs = 50, timeoutMs = 20_000 } = {}) {
  const { child, exited } = spawnNode([fairWaiter, server.url, name, label, String(retryDelay), String(holdMs)], {
    children,
    timeoutMs,
    stdin: 'ignore',
    what: `fair waiter ${label}`,
  })
  const result = exited.then((r) => {
    const line = r.stdout.split('\n').find((l) => l.startsWith('{'))
    return { ...r, granted: line ? JSON.parse(line) : null }
  })
  return { child, result }
}

/** Blocks the event loop for `ms` milliseconds (the native side runs on meanwhile). */
function spin(ms) {
  const end = performance.now() + ms
  while (performance.now() < end);
}

/** Settles a promise to { value } or { error } without throwing. */
function outcome(promise) {
  return promise.then(
    (value) => ({ value }),
    (error) => ({ error }),
  )
}

function assertAbortError(err, reason) {
  assert.ok(err instanceof AbortError, `expected an AbortError, got ${err && err.stack}`)
  assert.ok(err instanceof distLock.DistLockError)
  assert.equal(err.name, 'AbortError')
  assert.equal(err.code, 'ABORT_ERR')
  assert.equal(err.cause, reason)
}

// ---------------------------------------------------------------------------
// Wake-up at release and at TTL expiry

test('a lock released by another manager is granted at once, not after retryDelay (10 s)', async (t) => {
  const name = uniqueName('release')
  const holderManager = manager()
  const waiterManager = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(holderManager, waiterManager))

  const held = await holderManager.acquire(name)
  assert.ok(held)
  const t0 = performance.now()
  const pending = waiterManager.acquire(name)
  await waitSubscribed(name)
  await sleep(100) // the waiter is now asleep on its 10 s poll
  const releasedAt = performance.now()
  assert.equal(await held.release(), true)
  const lock = await pending
  const afterRelease = performance.now() - releasedAt
  const waited = performance.now() - t0
  assert.ok(lock, 'no lock')
  assert.ok(afterRelease < 2_000, `granted ${afterRelease.toFixed(0)} ms after the release`)
  // Attempts: refused, refused again right after subscribing, granted.
  assert.ok(lock.acquiredOnAttempt >= 2 && lock.acquiredOnAttempt <= 4, `acquiredOnAttempt ${lock.acquiredOnAttempt}`)
  assert.ok(
    lock.acquireDelay <= waited + 5 && lock.acquireDelay >= waited - afterRelease - 50,
    `acquireDelay ${lock.acquireDelay}, measured ${waited.toFixed(0)} ms`,
  )
  assert.equal(await redis.get(keyOf(name)), lock.id)
  assert.equal(await lock.release(), true)
  t.diagnostic(
    `release -> grant: ${afterRelease.toFixed(1)} ms (retryDelay 10 s); attempts ${lock.acquiredOnAttempt}; ` +
      `acquireDelay ${lock.acquireDelay} ms of ${waited.toFixed(0)} ms measured`,
  )
})

test('a lock released in the same manager wakes its waiter at once (retryDelay 10 s)', async (t) => {
  const name = uniqueName('local-release')
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(m))

  const held = await m.acquire(name)
  const pending = m.acquire(name)
  await sleep(200)
  const releasedAt = performance.now()
  await held.release()
  const lock = await pending
  const afterRelease = performance.now() - releasedAt
  assert.ok(lock)
  assert.ok(afterRelease < 2_000, `granted ${afterRelease.toFixed(0)} ms after the release`)
  await lock.release()
  t.diagnostic(`same-manager release -> grant: ${afterRelease.toFixed(1)} ms`)
})

test('the holder\'s TTL running out wakes the waiter (holder ttl 500 ms, never released)', async (t) => {
  const name = uniqueName('ttl')
  const holderManager = manager({ ttl: 500 })
  const waiterManager = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(holderManager, waiterManager))

  const held = await holderManager.acquire(name)
  const heldAt = performance.now()
  assert.ok(held)
  const lock = await waiterManager.acquire(name)
  const sinceHeld = performance.now() - heldAt
  assert.ok(lock)
  assert.ok(sinceHeld >= 400, `granted only ${sinceHeld.toFixed(0)} ms after a 500 ms lock was taken`)
  assert.ok(sinceHeld < 2_500, `granted ${sinceHeld.toFixed(0)} ms after a 500 ms lock was taken`)
  assert.equal(await redis.get(keyOf(name)), lock.id)
  assert.equal(await held.release(), false, 'the expired holder must not release the new owner')
  assert.equal(await redis.get(keyOf(name)), lock.id)
  await lock.release()
  t.diagnostic(`holder taken -> waiter granted: ${sinceHeld.toFixed(0)} ms (ttl 500 ms, retryDelay 10 s)`)
})

test('a refusal in the holder\'s last millisecond (PTTL 0) does not make the waiter sleep out retryDelay', async (t) => {
  // A waiter sleeps the remaining PTTL, so its next attempt often lands in
  // the holder's last millisecond: Redis still refuses the SET NX there and
  // PTTL answers 0, which is no reason to fall back to the retryDelay poll.
  // Made frequent here: 1.0-style holders keep renewing their key with a
  // 2 ms TTL for 300 ms, then stop (waiters on 10 keys, retryDelay 3 s).
  const RENEW =
    "local v = redis.call('GET', KEYS[1]) if v == false or v == ARGV[1] then " +
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', 2) return 1 end return 0"
  const m = manager({ retryDelay: 3_000 })
  t.after(() => closeAll(m))
  const results = await Promise.all(
    Array.from({ length: 10 }, async () => {
      const name = uniqueName('last-ms')
      await redis.set(keyOf(name), 'v1-holder', 'PX', 2)
      const pending = m.acquire(name)
      const end = performance.now() + 300
      while (performance.now() < end) {
        if ((await redis.eval(RENEW, 1, keyOf(name), 'v1-holder')) === 0) break // the waiter got in
      }
      const stoppedAt = performance.now()
      const lock = await pending
      const ms = performance.now() - stoppedAt
      await lock.release()
      return { ms: Math.round(ms), attempts: lock.acquiredOnAttempt }
    }),
  )
  const slow = results.filter((r) => r.ms > 1_000)
  t.diagnostic(`grant after the holder stopped renewing, ms/attempts: ${results.map((r) => `${r.ms}/${r.attempts}`).join(' ')}`)
  assert.deepEqual(slow, [], 'waiters slept out retryDelay after a refusal with PTTL 0')
})

test('1.0 interop: a plain SET NX PX holder (no release message) is waited out by its TTL', async (t) => {
  const name = uniqueName('v1')
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(m))

  assert.equal(await redis.set(keyOf(name), 'other-1.0-owner', 'PX', 800, 'NX'), 'OK')
  const t0 = performance.now()
  const lock = await m.acquire(name)
  const ms = performance.now() - t0
  assert.ok(lock)
  assert.ok(ms >= 600, `granted after ${ms.toFixed(0)} ms while the 1.0 lock had 800 ms left`)
  assert.ok(ms < 3_000, `granted after ${ms.toFixed(0)} ms`)
  // Our lock is a plain key with the id as value, so a 1.0 client is refused...
  assert.equal(await redis.get(keyOf(name)), lock.id)
  assert.equal(await redis.set(keyOf(name), 'other-1.0-owner', 'PX', 800, 'NX'), null)
  // ...default mode leaves no queue behind...
  assert.deepEqual(await keysOf(name), [keyOf(name), tokenOf(name)].sort())
  // ...and after our release the 1.0 client gets it.
  await lock.release()
  assert.equal(await redis.set(keyOf(name), 'other-1.0-owner', 'PX', 800, 'NX'), 'OK')
  // A 1.0 release (plain DEL, no message) still reaches a waiter by its poll.
  const pending = m.acquire(name, { retryDelay: 100 })
  await sleep(150)
  await redis.del(keyOf(name))
  const again = await pending
  assert.ok(again)
  await again.release()
  t.diagnostic(`1.0 holder with 800 ms left -> granted after ${ms.toFixed(0)} ms (retryDelay 10 s)`)
})

// ---------------------------------------------------------------------------
// The subscription connection

test('nothing is subscribed while nobody waits; uncontended locks open no pubsub connection', async (t) => {
  const name = uniqueName('idle')
  const m = manager()
  t.after(() => closeAll(m))
  await waitUntil(async () => (await subscribedChannels()).length === 0, { what: 'no channel (left by earlier tests)' })
  for (let i = 0; i < 3; i++) {
    const lock = await m.acquire(name)
    await lock.release()
  }
  assert.deepEqual(await subscribedChannels(), [])
  assert.equal((await pubsubClients()).length, 0)
})

test('one pubsub connection per manager while several keys are waited on; none subscribed afterwards', async (t) => {
  const names = [uniqueName('multi'), uniqueName('multi'), uniqueName('multi')]
  const holderManager = manager()
  const w1 = manager({ retryDelay: 10_000 })
  const w2 = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(holderManager, w1, w2))

  const held = await Promise.all(names.map((n) => holderManager.acquire(n)))
  // Manager 1 waits on all three keys (two waiters on the first), manager 2 on two.
  const pending = [
    ...names.map((n) => w1.acquire(n)),
    w1.acquire(names[0]),
    w2.acquire(names[1]),
    w2.acquire(names[2]),
  ]
  for (const n of names) await waitSubscribed(n)
  await sleep(200)
  const clients = await pubsubClients()
  const channels = await subscribedChannels()
  assert.deepEqual(channels, names.map(channelOf).sort())
  assert.equal(clients.length, 2, `pubsub clients: ${JSON.stringify(clients)}`)
  const numsub = await redis.pubsub('NUMSUB', ...names.map(channelOf))
  // [ch1, n1, ch2, n2, ch3, n3]: one subscriber per manager and channel.
  assert.deepEqual(numsub.filter((_, i) => i % 2 === 1).map(Number), [1, 2, 2])
  assert.deepEqual(clients.map((c) => Number(c.sub)).sort(), [2, 3])

  for (const h of held) await h.release()
  // Each grant is released at once, so every waiter gets its turn.
  await Promise.all(
    pending.map(async (p) => {
      const lock = await p
      assert.ok(lock)
      await lock.release()
    }),
  )
  await waitUntil(async () => (await subscribedChannels()).length === 0, {
    timeoutMs: 2_000,
    what: 'no channel subscribed after the waiters are done',
  })
  await waitUntil(async () => (await pubsubClients()).length === 0, {
    timeoutMs: 2_000,
    what: 'no client of type pubsub after the waiters are done',
  })
  t.diagnostic(`while waiting: ${clients.length} pubsub clients, ${channels.length} channels`)
})

// ---------------------------------------------------------------------------
// Local FIFO

test('local FIFO: 6 waiters of one key in one manager are granted in arrival order', async (t) => {
  const name = uniqueName('fifo')
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(m))

  const held = await m.acquire(name)
  const order = []
  const waiters = []
  for (let i = 0; i < 6; i++) {
    waiters.push(
      m.acquire(name).then(async (lock) => {
        assert.ok(lock)
        order.push(i)
        await sleep(5)
        await lock.release()
      }),
    )
    await sleep(20)
  }
  await held.release()
  await Promise.all(waiters)
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5])
})

test('local FIFO with the holder in another manager: arrival order, and only the head asks Redis', async (t) => {
  const name = uniqueName('fifo-remote')
  const holderManager = manager()
  const m = manager({ retryDelay: 50 })
  t.after(() => closeAll(holderManager, m))

  const held = await holderManager.acquire(name)
  const order = []
  const waiters = []
  for (let i = 0; i < 6; i++) {
    waiters.push(
      m.acquire(name).then(async (lock) => {
        assert.ok(lock)
        order.push(i)
        await sleep(5)
        await lock.release()
      }),
    )
    await sleep(20)
  }
  // Over 1 s of 50 ms polling, 6 waiters that all polled would send ~120
  // attempts; only the head polls (~20).
  await redis.config('RESETSTAT')
  await sleep(1_000)
  const stats = await commandStats()
  const attempts = (stats.evalsha || 0) + (stats.eval || 0)
  assert.ok(attempts <= 50, `${attempts} acquisition scripts in 1 s with 6 waiters polling every 50 ms`)
  await held.release()
  await Promise.all(waiters)
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5])
  t.diagnostic(`attempt scripts in 1 s with 6 local waiters (retryDelay 50): ${attempts}`)
})

test('a task that releases and asks again goes to the back of the local queue', async (t) => {
  const name = uniqueName('back')
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(m))

  const grants = []
  const a1 = await m.acquire(name)
  grants.push('A1')
  const b = m.acquire(name).then(async (lock) => {
    grants.push('B')
    await sleep(20)
    await lock.release()
  })
  await sleep(100) // B waits
  await a1.release()
  const a2 = await m.acquire(name)
  grants.push('A2')
  await a2.release()
  await b
  assert.deepEqual(grants, ['A1', 'B', 'A2'])
})

// ---------------------------------------------------------------------------
// Fair mode across processes

test('fair mode: 3 processes started in turn are granted in their start order', async (t) => {
  const name = uniqueName('fair')
  const m = manager()
  t.after(() => closeAll(m))

  const held = await m.acquire(name)
  const runs = []
  for (let i = 0; i < 3; i++) {
    runs.push(startFairWaiter(name, `w${i}`))
    await waitQueued(name, i + 1)
    await sleep(200)
  }
  assert.equal(await queueLength(name), 3)
  const releasedAt = Date.now()
  await held.release()
  const results = await Promise.all(runs.map((r) => r.result))
  for (const r of results) assert.equal(r.code, 0, `fair waiter failed: ${r.stderr}`)
  const byGrant = results.map((r) => r.granted).sort((x, y) => x.grantedAt - y.grantedAt)
  assert.deepEqual(
    byGrant.map((g) => g.label),
    ['w0', 'w1', 'w2'],
  )
  const tokens = byGrant.map((g) => g.fencingToken)
  assert.ok(tokens[0] < tokens[1] && tokens[1] < tokens[2], `fencing tokens ${tokens}`)
  const total = byGrant[2].grantedAt - releasedAt
  assert.ok(total < 5_000, `3 grants of 50 ms took ${total} ms after the release (retryDelay 10 s)`)
  assert.deepEqual(await keysOf(name), [])
  t.diagnostic(
    `release -> grants at +${byGrant.map((g) => g.grantedAt - releasedAt).join(', +')} ms (each holds 50 ms)`,
  )
})

test('fair mode: a SIGKILLed waiter at the head of the queue does not block it for long', async (t) => {
  const name = uniqueName('crash')
  const m = manager()
  t.after(() => closeAll(m))

  const held = await m.acquire(name)
  const a = startFairWaiter(name, 'A')
  await waitQueued(name, 1)
  const [aId] = await redis.zrange(queueOf(name), 0, -1)
  a.child.kill('SIGKILL')
  const aExit = await a.result
  assert.equal(aExit.signal, 'SIGKILL')
  const b = startFairWaiter(name, 'B')
  await waitQueued(name, 2)
  const queued = await redis.zrange(queueOf(name), 0, -1)
  assert.equal(queued[0], aId, 'the dead waiter is still first in line')
  const releasedAt = Date.now()
  await held.release()
  const r = await b.result
  assert.equal(r.code, 0, r.stderr)
  const afterRelease = r.granted.grantedAt - releasedAt
  assert.ok(afterRelease < 6_000, `B was granted ${afterRelease} ms after the release`)
  await waitUntil(async () => (await queueLength(name)) === 0, { timeoutMs: 1_000, what: 'an empty queue' })
  assert.deepEqual(await keysOf(name), [])
  t.diagnostic(`crashed head: B granted ${afterRelease} ms after the release (queue entries live 3 s)`)
})

test('fair: true per call: FIFO across two managers of one process, and no queue left behind', async (t) => {
  const name = uniqueName('fair-call')
  const holderManager = manager()
  const m1 = manager({ retryDelay: 10_000 })
  const m2 = manager({ retryDelay: 10_000, fair: true })
  t.after(() => closeAll(holderManager, m1, m2))
  assert.equal(m2.options.fair, true)
  assert.equal(m1.options.fair, false)

  const held = await holderManager.acquire(name)
  const order = []
  const take = (mgr, label, opts) =>
    mgr.acquire(name, opts).then(async (lock) => {
      assert.ok(lock)
      order.push(label)
      await sleep(10)
      await lock.release()
    })
  const p1 = take(m2, 'm2-first')
  await waitQueued(name, 1)
  const p2 = take(m1, 'm1-second', { fair: true })
  await waitQueued(name, 2)
  await held.release()
  await Promise.all([p1, p2])
  assert.deepEqual(order, ['m2-first', 'm1-second'])
  assert.deepEqual(await keysOf(name), [])
})

// ---------------------------------------------------------------------------
// AbortSignal

for (const fair of [false, true]) {
  test(`abort while waiting (fair: ${fair}) rejects with AbortError and leaves nothing behind`, async (t) => {
    const name = uniqueName(`abort-${fair}`)
    const holderManager = manager()
    const m = manager({ retryDelay: 10_000 })
    t.after(() => closeAll(holderManager, m))

    const held = await holderManager.acquire(name)
    const holderPttl = await redis.pttl(keyOf(name))
    const controller = new AbortController()
    const reason = new Error('stop waiting')
    const pending = outcome(m.acquire(name, { signal: controller.signal, fair }))
    await waitSubscribed(name)
    if (fair) await waitQueued(name, 1)
    const t0 = performance.now()
    controller.abort(reason)
    const { value, error } = await pending
    const ms = performance.now() - t0
    assert.equal(value, undefined)
    assertAbortError(error, reason)
    assert.ok(ms < 1_000, `the abort took ${ms.toFixed(0)} ms to reject`)
    // The holder's key is untouched, nothing of the waiter is left.
    assert.equal(await redis.get(keyOf(name)), held.id)
    const pttl = await redis.pttl(keyOf(name))
    assert.ok(pttl > 0 && pttl <= holderPttl, `holder pttl ${pttl}`)
    await waitUntil(async () => (await redis.exists(queueOf(name), deadlinesOf(name))) === 0, {
      timeoutMs: 1_000,
      what: 'the queue entry to go',
    })
    assert.deepEqual(await keysOf(name), [keyOf(name), tokenOf(name)].sort())
    await waitUntil(async () => !(await subscribedChannels()).includes(channelOf(name)), {
      timeoutMs: 2_000,
      what: 'the channel to be unsubscribed',
    })
    assert.equal(await held.release(), true)
    t.diagnostic(`abort -> rejection: ${ms.toFixed(1)} ms`)
  })
}

test('fair abort: the queue entry is gone as soon as the promise rejects (20 rounds)', async (t) => {
  // What a caller may check right after the rejection, without polling:
  // "an aborted acquire leaves nothing behind in Redis".
  const name = uniqueName('abort-fair-now')
  const holderManager = manager()
  const m = manager({ retryDelay: 10_000, fair: true })
  t.after(() => closeAll(holderManager, m))

  const held = await holderManager.acquire(name)
  const stale = []
  for (let round = 0; round < 20; round++) {
    const controller = new AbortController()
    const pending = outcome(m.acquire(name, { signal: controller.signal }))
    await waitQueued(name, 1)
    controller.abort()
    const { error } = await pending
    assert.equal(error && error.name, 'AbortError')
    if ((await queueLength(name)) !== 0) stale.push(round)
    await waitUntil(async () => (await queueLength(name)) === 0, { timeoutMs: 1_000, what: 'an empty queue' })
  }
  await held.release()
  t.diagnostic(`rounds whose queue entry was still there at the rejection: [${stale}]`)
  assert.deepEqual(stale, [], 'queue entry still there right after the AbortError')
})

test('abort, callback form: the callback gets the AbortError', async (t) => {
  const name = uniqueName('abort-cb')
  const holderManager = manager()
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(holderManager, m))

  const held = await holderManager.acquire(name)
  const controller = new AbortController()
  const result = new Promise((resolve) => {
    m.acquire(name, { signal: controller.signal }, (err, lock) => resolve({ err, lock }))
  })
  await waitSubscribed(name)
  controller.abort('reason-string')
  const { err, lock } = await result
  assert.equal(lock, undefined)
  assertAbortError(err, 'reason-string')
  assert.equal(await redis.get(keyOf(name)), held.id)
  await held.release()
})

test('abort of a waiter queued behind another one in the same manager leaves the others alone', async (t) => {
  const name = uniqueName('abort-queued')
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(m))

  const held = await m.acquire(name)
  const first = m.acquire(name)
  await sleep(30)
  const controller = new AbortController()
  const second = outcome(m.acquire(name, { signal: controller.signal }))
  await sleep(30)
  const third = m.acquire(name)
  await sleep(30)
  controller.abort()
  const { error } = await second
  assert.equal(error && error.code, 'ABORT_ERR')
  assert.ok(error.cause instanceof DOMException && error.cause.name === 'AbortError', `cause ${error.cause}`)
  await held.release()
  const l1 = await first
  assert.ok(l1)
  await l1.release()
  const l3 = await third
  assert.ok(l3)
  await l3.release()
  assert.deepEqual(await keysOf(name), [])
})

for (const fair of [false, true]) {
  test(`abort racing the grant leaves no lock behind (fair: ${fair}, 20 rounds)`, async (t) => {
    const name = uniqueName(`race-${fair}`)
    const holderManager = manager()
    const m = manager({ retryDelay: 10_000, fair })
    t.after(() => closeAll(holderManager, m))

    const tally = { granted: 0, aborted: 0 }
    for (let i = 0; i < 20; i++) {
      const held = await holderManager.acquire(name, { maxRetries: 0 })
      assert.ok(held, `round ${i}: the holder could not take the lock: something was left behind`)
      const controller = new AbortController()
      const pending = outcome(m.acquire(name, { signal: controller.signal }))
      await waitSubscribed(name)
      if (fair) await waitQueued(name, 1)
      // Abort 0-5 ms after the release is sent: below 1.5 ms by spinning
      // (sub-millisecond moments: while the waiter wakes, while its attempt
      // is in flight), above by a timer.
      const delay = Math.random() * 5
      const released = held.release()
      if (delay < 1.5) {
        spin(delay)
        controller.abort()
      } else {
        setTimeout(() => controller.abort(), delay)
      }
      assert.equal(await released, true)
      const { value, error } = await pending
      await sleep(6) // the timer has fired
      if (error) {
        assert.equal(error.name, 'AbortError', `round ${i}: ${error.stack}`)
        tally.aborted++
      } else {
        assert.ok(value, `round ${i}: acquire resolved ${value}`)
        tally.granted++
        assert.equal(await value.release(), true, `round ${i}: a granted lock was lost`)
      }
      // Only the fencing counter may stay (background cleanups get a moment).
      await waitUntil(async () => (await keysOf(name)).join() === '', {
        timeoutMs: 2_000,
        what: `round ${i}: no key left (keys: ${await keysOf(name)})`,
      })
    }
    assert.deepEqual(await keysOf(name), [])
    t.diagnostic(`20 rounds: ${tally.granted} granted before the abort, ${tally.aborted} aborted`)
  })
}

test('AbortSignal.timeout() and using() with a signal', async (t) => {
  const name = uniqueName('abort-timeout')
  const holderManager = manager()
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(holderManager, m))

  const held = await holderManager.acquire(name)
  const t0 = performance.now()
  const { error } = await outcome(m.acquire(name, { signal: AbortSignal.timeout(300) }))
  const ms = performance.now() - t0
  assert.equal(error && error.code, 'ABORT_ERR', error && error.stack)
  assert.equal(error.cause && error.cause.name, 'TimeoutError')
  assert.ok(ms >= 250 && ms < 2_500, `aborted after ${ms.toFixed(0)} ms`)

  const controller = new AbortController()
  let ran = false
  const using = outcome(m.using(name, { signal: controller.signal }, () => (ran = true)))
  await sleep(100)
  controller.abort()
  const u = await using
  assert.equal(u.error && u.error.name, 'AbortError')
  assert.equal(ran, false)
  assert.equal(await redis.get(keyOf(name)), held.id)
  await held.release()
  assert.deepEqual(await keysOf(name), [])
})

test('an abort after the grant changes nothing: the lock stays held', async (t) => {
  const name = uniqueName('abort-after')
  const m = manager()
  t.after(() => closeAll(m))
  const controller = new AbortController()
  const lock = await m.acquire(name, { signal: controller.signal })
  assert.ok(lock)
  let lost = false
  lock.on('lost', () => (lost = true))
  controller.abort()
  await sleep(100)
  assert.equal(lost, false)
  assert.equal(await redis.get(keyOf(name)), lock.id)
  assert.equal(await lock.isHeld(), true)
  assert.equal(await lock.release(), true)
})

test('an already-aborted signal rejects at once and sends nothing to Redis', async (t) => {
  const name = uniqueName('pre-aborted')
  const m = manager()
  t.after(() => closeAll(m))

  const reason = new Error('too late')
  const signal = AbortSignal.abort(reason)
  await redis.config('RESETSTAT')
  const t0 = performance.now()
  const { error } = await outcome(m.acquire(name, { signal }))
  const ms = performance.now() - t0
  assertAbortError(error, reason)
  assert.ok(ms < 200, `rejected after ${ms.toFixed(0)} ms`)
  const cbErr = await new Promise((resolve) => m.acquire(name, { signal, fair: true }, (err) => resolve(err)))
  assertAbortError(cbErr, reason)
  await sleep(100)
  const stats = await commandStats()
  for (const cmd of ['evalsha', 'eval', 'set', 'script|load', 'subscribe', 'zadd']) {
    assert.equal(stats[cmd], undefined, `${cmd} was sent: ${JSON.stringify(stats)}`)
  }
  assert.deepEqual(await keysOf(name), [])
})

test('invalid signal and timeout options are refused with EINVALIDARG', async (t) => {
  const m = manager()
  t.after(() => closeAll(m))
  const name = uniqueName('invalid')
  for (const signal of [{ aborted: false }, 'signal', new AbortController(), null]) {
    await assert.rejects(m.acquire(name, { signal }), (err) => {
      assert.ok(err instanceof InvalidArgumentError, `signal ${signal}: ${err && err.stack}`)
      assert.equal(err.code, 'EINVALIDARG')
      assert.match(err.message, /signal/)
      return true
    })
  }
  for (const timeout of [-1, Number.NaN, '5', 1.5, Infinity]) {
    await assert.rejects(m.acquire(name, { timeout }), (err) => {
      assert.ok(err instanceof InvalidArgumentError, `timeout ${timeout}: ${err && err.stack}`)
      assert.equal(err.code, 'EINVALIDARG')
      assert.match(err.message, /timeout/)
      return true
    })
  }
  // Callback form and the manager options too.
  const cbErr = await new Promise((resolve) => m.acquire(name, { timeout: -1 }, (err) => resolve(err)))
  assert.equal(cbErr.code, 'EINVALIDARG')
  assert.throws(() => distLock(server.url, { timeout: -1 }), { code: 'EINVALIDARG', message: /timeout/ })
  assert.throws(() => distLock(server.url, { signal: new AbortController().signal }), { code: 'EINVALIDARG' })
  assert.deepEqual(await keysOf(name), [])
})

// ---------------------------------------------------------------------------
// timeout and maxRetries

for (const fair of [false, true]) {
  test(`timeout (fair: ${fair}) resolves false after >= timeout ms and leaves no queue entry`, async (t) => {
    const name = uniqueName(`timeout-${fair}`)
    const holderManager = manager()
    const m = manager({ retryDelay: 10_000, fair })
    t.after(() => closeAll(holderManager, m))

    const held = await holderManager.acquire(name)
    const t0 = performance.now()
    const result = await m.acquire(name, { timeout: 400 })
    const ms = performance.now() - t0
    assert.equal(result, false)
    assert.ok(ms >= 399, `gave up after ${ms.toFixed(0)} ms`)
    assert.ok(ms < 2_500, `gave up after ${ms.toFixed(0)} ms`)
    assert.equal(await queueLength(name), 0)
    assert.deepEqual(await keysOf(name), [keyOf(name), tokenOf(name)].sort())
    assert.equal(await redis.get(keyOf(name)), held.id)
    await held.release()
    t.diagnostic(`timeout 400 -> false after ${ms.toFixed(0)} ms`)
  })
}

test('timeout as a manager option applies to every acquire; a per-call value overrides it', async (t) => {
  const name = uniqueName('timeout-manager')
  const holderManager = manager()
  const m = manager({ retryDelay: 10_000, timeout: 300 })
  t.after(() => closeAll(holderManager, m))
  assert.equal(m.options.timeout, 300)
  assert.equal(manager().options.timeout, undefined)

  const held = await holderManager.acquire(name)
  const t0 = performance.now()
  assert.equal(await m.acquire(name), false)
  const ms = performance.now() - t0
  assert.ok(ms >= 299 && ms < 2_500, `gave up after ${ms.toFixed(0)} ms`)
  const t1 = performance.now()
  assert.equal(await m.acquire(name, { timeout: 600 }), false)
  const ms2 = performance.now() - t1
  assert.ok(ms2 >= 599 && ms2 < 2_800, `gave up after ${ms2.toFixed(0)} ms`)
  await held.release()
})

test('timeout of waiters queued locally behind the head, and timeout: 0 tries once', async (t) => {
  const name = uniqueName('timeout-queued')
  const holderManager = manager()
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(holderManager, m))

  const held = await holderManager.acquire(name)
  const head = m.acquire(name, { timeout: 3_000 })
  await sleep(30)
  const t0 = performance.now()
  const behind = await m.acquire(name, { timeout: 300, fair: true })
  const ms = performance.now() - t0
  assert.equal(behind, false)
  assert.ok(ms >= 299 && ms < 2_000, `gave up after ${ms.toFixed(0)} ms`)
  assert.equal(await m.acquire(name, { timeout: 0 }), false)
  await held.release()
  const lock = await head
  assert.ok(lock)
  await lock.release()
  // Uncontended, timeout: 0 still grants.
  const quick = await m.acquire(name, { timeout: 0 })
  assert.ok(quick)
  await quick.release()
  assert.deepEqual(await keysOf(name), [])
})

test('maxRetries: 0 tries exactly once; limited retries give up no sooner than maxRetries x retryDelay', async (t) => {
  const name = uniqueName('retries')
  const holderManager = manager()
  const m = manager()
  t.after(() => closeAll(holderManager, m))

  const held = await holderManager.acquire(name)
  await sleep(50)
  await redis.config('RESETSTAT')
  const t0 = performance.now()
  assert.equal(await m.acquire(name, { maxRetries: 0, retryDelay: 10_000 }), false)
  const once = performance.now() - t0
  const stats = await commandStats()
  assert.equal((stats.evalsha || 0) + (stats.eval || 0), 1, `maxRetries 0 sent: ${JSON.stringify(stats)}`)
  assert.ok(once < 1_000, `maxRetries 0 took ${once.toFixed(0)} ms`)
  assert.deepEqual(await subscribedChannels(), [], 'a one-shot attempt subscribed')
  assert.equal(await m.acquire(name, { maxRetries: 0, fair: true }), false)
  assert.equal(await queueLength(name), 0, 'a fair one-shot attempt left its queue entry')

  const t1 = performance.now()
  assert.equal(await m.acquire(name, { maxRetries: 3, retryDelay: 100 }), false)
  const limited = performance.now() - t1
  assert.ok(limited >= 299, `maxRetries 3 x 100 ms gave up after ${limited.toFixed(0)} ms`)
  assert.ok(limited < 2_500, `maxRetries 3 x 100 ms gave up after ${limited.toFixed(0)} ms`)

  await held.release()

  // Limited retries still get a released lock at once. (A key of its own: a
  // new subscription right after the one above was dropped can be undone by
  // that one's late UNSUBSCRIBE, see the test on it below.)
  const other = uniqueName('retries-release')
  const otherHeld = await holderManager.acquire(other)
  const pending = m.acquire(other, { maxRetries: 1, retryDelay: 10_000 })
  await waitSubscribed(other)
  await sleep(50)
  const releasedAt = performance.now()
  await otherHeld.release()
  const lock = await pending
  assert.ok(lock, 'maxRetries 1 with retryDelay 10 s: the release came within the budget')
  assert.ok(performance.now() - releasedAt < 2_000)
  await lock.release()
  t.diagnostic(`maxRetries 0: ${once.toFixed(0)} ms; maxRetries 3 x 100 ms: false after ${limited.toFixed(0)} ms`)
})

test('acquiredOnAttempt and acquireDelay of an uncontended grant', async (t) => {
  const name = uniqueName('uncontended')
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(m))
  const t0 = performance.now()
  const lock = await m.acquire(name)
  const ms = performance.now() - t0
  assert.equal(lock.acquiredOnAttempt, 1)
  assert.ok(lock.acquireDelay >= 0 && lock.acquireDelay <= ms + 1, `acquireDelay ${lock.acquireDelay} of ${ms}`)
  await lock.release()
})

// ---------------------------------------------------------------------------
// The subscription connection dropped

test('a waiter that subscribes right after another waiter of the key gave up stays subscribed (CPU load, up to 40 rounds)', async (t) => {
  // Dropping a subscription sends its UNSUBSCRIBE from a spawned task; a new
  // waiter's SUBSCRIBE to the same channel may go out first, and the late
  // UNSUBSCRIBE then leaves the new waiter deaf to release messages (it sleeps
  // out retryDelay). Busy processes make the scheduling delay likelier, as on
  // a loaded machine.
  const hogs = [0, 1].map(() => {
    const hog = spawn(process.execPath, ['-e', 'for (;;);'], { stdio: 'ignore' })
    children.add(hog)
    return hog
  })
  const holderManager = manager()
  const m = manager({ retryDelay: 1_000 })
  t.after(async () => {
    closeAll(holderManager, m)
    for (const hog of hogs) {
      hog.kill('SIGKILL')
      children.delete(hog)
    }
  })

  const deaf = []
  let rounds = 0
  for (let i = 0; i < 40 && deaf.length === 0; i++) {
    rounds++
    const name = uniqueName('resub')
    const held = await holderManager.acquire(name)
    assert.equal(await m.acquire(name, { timeout: 30 }), false)
    const pending = m.acquire(name)
    await sleep(50)
    const [, subscribers] = await redis.pubsub('NUMSUB', channelOf(name))
    if (Number(subscribers) === 0) deaf.push(i)
    await held.release()
    const lock = await pending
    assert.ok(lock)
    await lock.release()
  }
  t.diagnostic(`${rounds} rounds; rounds whose waiter was left unsubscribed: [${deaf}]`)
  assert.deepEqual(deaf, [], 'a late UNSUBSCRIBE undid the new waiter\'s SUBSCRIBE')
})

test('CLIENT KILL TYPE pubsub while waiting: resubscribed, then granted promptly after release', async (t) => {
  const name = uniqueName('kill')
  const holderManager = manager()
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(holderManager, m))

  const held = await holderManager.acquire(name)
  const pending = m.acquire(name)
  await waitSubscribed(name)
  const before = (await pubsubClients()).map((c) => c.id)
  assert.equal(before.length, 1)
  const killed = await redis.client('KILL', 'TYPE', 'pubsub')
  assert.equal(Number(killed), 1)
  const killedAt = performance.now()
  // The manager comes back on a new connection and subscribes again.
  await waitSubscribed(name, 3_000)
  const resubscribed = performance.now() - killedAt
  const after = (await pubsubClients()).map((c) => c.id)
  assert.equal(after.length, 1)
  assert.notEqual(after[0], before[0])
  await sleep(100)
  const releasedAt = performance.now()
  await held.release()
  const lock = await pending
  const ms = performance.now() - releasedAt
  assert.ok(lock)
  assert.ok(ms < 3_000, `granted ${ms.toFixed(0)} ms after the release`)
  await lock.release()
  t.diagnostic(`resubscribed ${resubscribed.toFixed(0)} ms after the kill; release -> grant ${ms.toFixed(0)} ms`)
})

test('CLIENT KILL TYPE pubsub right before the release (message lost): the waiter is still granted promptly', async (t) => {
  const name = uniqueName('kill-lost')
  const holderManager = manager()
  const m = manager({ retryDelay: 10_000 })
  t.after(() => closeAll(holderManager, m))

  const held = await holderManager.acquire(name)
  const pending = m.acquire(name)
  await waitSubscribed(name)
  await sleep(50)
  await redis.client('KILL', 'TYPE', 'pubsub')
  const releasedAt = performance.now()
  await held.release() // published while nobody listens
  const lock = await pending
  const ms = performance.now() - releasedAt
  assert.ok(lock)
  assert.ok(ms < 3_000, `granted ${ms.toFixed(0)} ms after the release`)
  await lock.release()
  await waitUntil(async () => (await subscribedChannels()).length === 0, { timeoutMs: 2_000, what: 'no channel' })
  t.diagnostic(`release during the reconnection -> grant ${ms.toFixed(0)} ms`)
})

test('closing a manager while its fair waiter sleeps: ECLOSED, and its queue entry is removed (5 rounds)', async (t) => {
  // The core documents that a close, like an abort, leaves nothing in Redis
  // (the fair-queue entry is removed). An entry left at the head holds up the
  // other processes' fair waiters until it expires (~3 s).
  const name = uniqueName('close')
  const holderManager = manager()
  t.after(() => closeAll(holderManager))

  const held = await holderManager.acquire(name)
  const left = []
  for (let round = 0; round < 5; round++) {
    const m = manager({ retryDelay: 10_000, fair: true })
    const pending = outcome(m.acquire(name))
    await waitSubscribed(name)
    await waitQueued(name, 1)
    const [id] = await redis.zrange(queueOf(name), 0, -1)
    await sleep(100) // asleep, no attempt in flight
    closeAll(m)
    const { error } = await pending
    assert.equal(error && error.code, 'ECLOSED')
    await waitUntil(async () => !(await subscribedChannels()).includes(channelOf(name)), {
      timeoutMs: 2_000,
      what: 'the closed manager to unsubscribe',
    })
    await sleep(300)
    if ((await redis.zscore(queueOf(name), id)) !== null) {
      left.push(round)
      await redis.zrem(queueOf(name), id) // the next round starts clean
      await redis.zrem(deadlinesOf(name), id)
    }
  }
  await held.release()
  t.diagnostic(`rounds whose queue entry outlived the close by 300 ms: [${left}]`)
  assert.deepEqual(left, [], 'the closed waiter\'s fair-queue entry was left in Redis')
})

// ---------------------------------------------------------------------------
// Without pub/sub permission (Redis 7 ACL users get no channels by default)

test('a waiter whose SUBSCRIBE is refused (ACL) still gets the lock by polling every retryDelay', async (t) => {
  const name = uniqueName('acl-sub')
  await redis.acl('SETUSER', 'nochan-waiter', 'on', '>pw', '~*', '+@all', 'resetchannels')
  const holderManager = manager()
  const m = manager(`redis://nochan-waiter:pw@127.0.0.1:${server.port}`, { retryDelay: 200 })
  t.after(async () => {
    closeAll(holderManager, m)
    await redis.acl('DELUSER', 'nochan-waiter')
  })

  const held = await holderManager.acquire(name)
  const pending = m.acquire(name)
  await sleep(500)
  assert.deepEqual(await subscribedChannels(), [])
  const releasedAt = performance.now()
  await held.release()
  const lock = await pending
  const ms = performance.now() - releasedAt
  assert.ok(lock)
  assert.ok(ms < 2_000, `granted ${ms.toFixed(0)} ms after the release (retryDelay 200)`)
  assert.equal(await redis.get(keyOf(name)), lock.id)
  await redis.del(keyOf(name)) // this user cannot release (see the next test)
  t.diagnostic(`polling fallback: granted ${ms.toFixed(0)} ms after the release`)
})

test('release by a user without channel permission (a 1.0 setup) succeeds and wakes local waiters', async (t) => {
  // dist-lock 1.0 released with a plain owner-checked script; 2.0's release
  // script also PUBLISHes, which Redis 7 refuses to an ACL user without
  // channel permissions (the default for users created by ACL SETUSER).
  const name = uniqueName('acl-release')
  await redis.acl('SETUSER', 'nochan-app', 'on', '>pw', '~*', '+@all', 'resetchannels')
  const m = manager(`redis://nochan-app:pw@127.0.0.1:${server.port}`, { ttl: 3_000, retryDelay: 50 })
  t.after(async () => {
    closeAll(m)
    await redis.acl('DELUSER', 'nochan-app')
  })

  // A is granted while B waits in the same manager; A's release must hand
  // the lock to B at once (not after A's ttl).
  const first = await m.acquire(name)
  const a = m.acquire(name)
  await sleep(20)
  const b = m.acquire(name)
  await sleep(20)
  const firstRelease = await outcome(first.release())
  const lockA = await a
  const releasedAt = performance.now()
  const aRelease = await outcome(lockA.release())
  const keyAfterRelease = await redis.exists(keyOf(name))
  const lockB = await b
  const bDelay = performance.now() - releasedAt
  await lockB.release().catch(() => {})
  await redis.del(keyOf(name))
  t.diagnostic(
    `release: ${firstRelease.error ? firstRelease.error.code : firstRelease.value}; key after A's release: ` +
      `${keyAfterRelease}; B granted ${bDelay.toFixed(0)} ms after A's release (ttl 3000, retryDelay 50)`,
  )
  assert.equal(firstRelease.error, undefined, `release failed: ${firstRelease.error && firstRelease.error.message}`)
  assert.equal(firstRelease.value, true)
  assert.equal(aRelease.error, undefined)
  assert.ok(bDelay < 1_000, `B granted ${bDelay.toFixed(0)} ms after A's release`)
})
