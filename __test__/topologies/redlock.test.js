'use strict'

// Redlock mode against 5 independent masters (helpers/topology.js), each a
// redis-server of its own on a free loopback port:
//
//  - the core API over the quorum, in both the promise and callback forms;
//    the key holds the lock id on every master; no fencing token; `fair` and
//    `waitReplicas` refused;
//  - a majority decides: a stale holder on a minority does not block, on a
//    majority it does, and a failed attempt is undone on every master;
//  - mutual exclusion: 4 managers x 4 tasks doing a non-atomic GET + SET of
//    a counter under the lock: the count is exact and no holders overlap;
//  - outages: 2 of 5 masters down still works; 3 of 5 down fails fast with a
//    ConnectionError naming the failed masters; restarted, it works again;
//  - a slow minority behind a latency proxy (chaos/proxy.js): an attempt
//    that takes longer than the validity budget is refused and leaves
//    nothing locked; a fast one is granted with a validity reduced by the
//    time the attempt took;
//  - wake-up on release through pub/sub, and auto-extension (kept alive
//    past its ttl, reported lost once a majority lost the key).
//
// Timings are loose upper bounds (a busy 2-core machine); the Redis on
// 127.0.0.1:6379 is never used.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { performance } = require('node:perf_hooks')
const Redis = require('ioredis')
const distLock = require('../..')
const { startMasters, cli } = require('../helpers/topology.js')
const { ChaosProxy } = require('../chaos/proxy.js')
const { wokenAtRelease } = require('./wake.js')
const { sleep, managerPool, within, uniqueNames } = require('../helpers/util.js')

const { InvalidArgumentError, ConnectionError, LockLostError, DistLockError } = distLock

const N = 5
const QUORUM = 3
/** Time bounds of the managers here: outages show within a second. */
const BOUNDS = { connectTimeout: 1000, commandTimeout: 1000 }

let masters = []
let urls = []
const managers = managerPool()
const uniqueName = uniqueNames('redlock')

before(async () => {
  masters = await startMasters(N)
  urls = masters.map((m) => m.url)
})

after(async () => {
  await managers.closeAll()
  for (const m of masters) await m.stop()
})

/** A Redlock manager over all 5 masters. */
function manager(options) {
  return managers.open(urls, { ...BOUNDS, ...options })
}

const keyOf = (name) => `lock:${name}`
const address = (m) => `127.0.0.1:${m.port}`

/** The value of `key` on each master in `which` (all by default). */
function valuesOn(key, which = masters) {
  return which.map((m) => cli(m.port, 'GET', key))
}

/** Sets `key` to a foreign lock id on the masters `which` (a stale or rival holder). */
function plantOn(which, key, ttlMs = 30_000) {
  for (const m of which) assert.equal(cli(m.port, 'SET', key, 'someone-else', 'PX', ttlMs), 'OK')
}

function isCode(code, messagePart) {
  return (err) => {
    assert.ok(err instanceof DistLockError, `expected a DistLockError, got ${err && err.stack}`)
    assert.equal(err.code, code, err.message)
    if (messagePart !== undefined) assert.match(err.message, messagePart)
    return true
  }
}

/** Calls `fn(...args, callback)` and resolves or rejects with what the callback got. */
function viaCallback(fn, ...args) {
  return new Promise((resolve, reject) => {
    const ret = fn(...args, (err, value) => (err ? reject(err) : resolve(value)))
    assert.equal(ret, undefined, 'a call with a callback returns undefined')
  })
}

// ---------------------------------------------------------------------------

describe('the harness', () => {
  test('startMasters(5): five independent masters on distinct loopback ports', () => {
    assert.equal(masters.length, N)
    assert.equal(new Set(masters.map((m) => m.port)).size, N)
    for (const m of masters) {
      assert.ok(m.port !== 6379)
      assert.equal(cli(m.port, 'PING'), 'PONG')
      assert.equal(cli(m.port, 'ROLE').split('\n')[0], 'master')
      assert.equal(cli(m.port, 'CONFIG', 'GET', 'save').split('\n')[1] ?? '', '')
    }
    const key = uniqueName('harness')
    cli(masters[0].port, 'SET', key, 'x')
    assert.deepEqual(valuesOn(key).slice(1), ['', '', '', ''], 'the masters share nothing')
    cli(masters[0].port, 'DEL', key)
  })
})

describe('the core API over a quorum of 5 masters', () => {
  test('promise form: acquire, isLocked, isHeld, extend, release; the key holds the lock id on every master', async () => {
    const m = manager()
    const name = uniqueName('api')
    const lock = await m.acquire(name, { ttl: 10_000 })
    assert.ok(lock, 'not granted')
    assert.equal(lock.key, keyOf(name))
    assert.equal(lock.fencingToken, null, 'Redlock offers no fencing token')
    assert.equal(lock.acquiredOnAttempt, 1)
    assert.deepEqual(valuesOn(lock.key), Array(N).fill(lock.id))
    for (const mm of masters) {
      const pttl = Number(cli(mm.port, 'PTTL', lock.key))
      assert.ok(pttl > 8_000 && pttl <= 10_000, `PTTL ${pttl} on ${address(mm)}`)
    }
    const remaining = lock.validUntil - performance.now()
    assert.ok(remaining > 0 && remaining < 10_000 - 100, `validity ${remaining} ms (ttl 10 s less the drift allowance)`)
    assert.equal(lock.isValid(), true)
    assert.equal(await m.isLocked(name), true)
    assert.equal(await lock.isHeld(), true)

    await lock.extend(20)
    for (const mm of masters) {
      const pttl = Number(cli(mm.port, 'PTTL', lock.key))
      assert.ok(pttl > 18_000 && pttl <= 20_000, `PTTL ${pttl} on ${address(mm)} after extend(20)`)
    }
    assert.ok(lock.validUntil - performance.now() > 18_000)

    assert.equal(await lock.release(), true)
    assert.deepEqual(valuesOn(lock.key), Array(N).fill(''), 'released on every master')
    assert.equal(await m.isLocked(name), false)
    assert.equal(await lock.isHeld(), false)
    assert.equal(await lock.release(), false, 'a second release')
    await assert.rejects(lock.extend(1), isCode('ELOCKLOST'))
  })

  test('callback form: acquire, isLocked, isHeld, extend, release', async () => {
    const m = manager()
    const name = uniqueName('callbacks')
    const lock = await viaCallback((cb) => m.acquire(name, { ttl: 10_000 }, cb))
    assert.ok(lock)
    assert.equal(lock.fencingToken, null)
    assert.deepEqual(valuesOn(lock.key), Array(N).fill(lock.id))
    assert.equal(await viaCallback((cb) => m.isLocked(name, cb)), true)
    assert.equal(await viaCallback((cb) => lock.isHeld(cb)), true)
    await viaCallback((cb) => lock.extend(15, cb))
    assert.ok(Number(cli(masters[4].port, 'PTTL', lock.key)) > 13_000)
    assert.equal(await viaCallback((cb) => lock.release(cb)), true)
    assert.equal(await viaCallback((cb) => m.isLocked(name, cb)), false)
    // acquire(name, callback) without options
    const again = await viaCallback((cb) => m.acquire(name, cb))
    assert.ok(again)
    assert.equal(await again.release(), true)
  })

  test('a held lock refuses a second manager, which gets it after the release; using() works', async () => {
    const a = manager()
    const b = manager()
    const name = uniqueName('contend')
    const lock = await a.acquire(name)
    assert.equal(await b.acquire(name, { maxRetries: 0 }), false)
    assert.equal(await b.acquire(name, { timeout: 300 }), false)
    assert.deepEqual(valuesOn(lock.key), Array(N).fill(lock.id), "the refused attempts left the holder's keys alone")
    assert.equal(await lock.release(), true)
    const result = await b.using(name, async (l) => {
      assert.deepEqual(valuesOn(l.key), Array(N).fill(l.id))
      return 'done'
    })
    assert.equal(result, 'done')
    assert.deepEqual(valuesOn(keyOf(name)), Array(N).fill(''), 'using() released it')
  })

  test('a majority decides: a rival on 2 of 5 masters does not block; on 3 of 5 it does, and the attempt is undone', async () => {
    const m = manager()
    const minority = uniqueName('minority')
    plantOn(masters.slice(0, 2), keyOf(minority))
    const lock = await m.acquire(minority, { maxRetries: 0 })
    assert.ok(lock, 'refused although 3 of 5 masters were free')
    assert.deepEqual(valuesOn(lock.key), ['someone-else', 'someone-else', lock.id, lock.id, lock.id])
    assert.equal(await lock.isHeld(), true)
    assert.equal(await m.isLocked(minority), true)
    assert.equal(await lock.release(), true, 'held by a majority until released')
    assert.deepEqual(valuesOn(lock.key), ['someone-else', 'someone-else', '', '', ''], "the rival's keys are left alone")

    const majority = uniqueName('majority')
    plantOn(masters.slice(0, 3), keyOf(majority))
    assert.equal(await m.isLocked(majority), true)
    assert.equal(await m.acquire(majority, { maxRetries: 0 }), false)
    // The 2 masters that granted it are undone (in the background, at once).
    const t0 = performance.now()
    while (valuesOn(keyOf(majority)).slice(3).some((v) => v !== '')) {
      assert.ok(performance.now() - t0 < 3_000, `not undone: ${valuesOn(keyOf(majority))}`)
      await sleep(20)
    }
    assert.deepEqual(valuesOn(keyOf(majority)), ['someone-else', 'someone-else', 'someone-else', '', ''])
    for (const mm of masters) cli(mm.port, 'DEL', keyOf(minority), keyOf(majority))
  })

  test('hash locks of dist-lock 2.0.1 count as held: on 3 of 5 masters they block, on 2 they do not, and stay untouched', async () => {
    const m = manager()
    const hashOn = (which, key) => {
      for (const mm of which) {
        cli(mm.port, 'HSET', key, 'id', 'owner')
        cli(mm.port, 'PEXPIRE', key, 30_000)
      }
    }
    const types = (key) => masters.map((mm) => cli(mm.port, 'TYPE', key))
    const majority = uniqueName('hash-majority')
    hashOn(masters.slice(0, 3), keyOf(majority))
    assert.equal(await m.isLocked(majority), true)
    assert.equal(await m.acquire(majority, { maxRetries: 2, retryDelay: 20 }), false)
    const t0 = performance.now()
    while (types(keyOf(majority)).slice(3).some((v) => v !== 'none')) {
      assert.ok(performance.now() - t0 < 3_000, `not undone: ${types(keyOf(majority))}`)
      await sleep(20)
    }
    assert.deepEqual(types(keyOf(majority)), ['hash', 'hash', 'hash', 'none', 'none'])

    const minority = uniqueName('hash-minority')
    hashOn(masters.slice(0, 2), keyOf(minority))
    const lock = await m.acquire(minority, { maxRetries: 0 })
    assert.ok(lock, 'refused although 3 of 5 masters were free')
    assert.equal(await lock.isHeld(), true)
    await lock.extend(20)
    assert.equal(await lock.release(), true)
    assert.deepEqual(types(keyOf(minority)), ['hash', 'hash', 'none', 'none', 'none'])
    for (const key of [keyOf(majority), keyOf(minority)]) {
      for (const mm of masters.slice(0, 2)) assert.equal(cli(mm.port, 'HGETALL', key), 'id\nowner')
      for (const mm of masters) cli(mm.port, 'DEL', key)
    }
  })

  test('fair and waitReplicas are refused with EINVALIDARG naming the option', async () => {
    assert.throws(() => distLock(urls, { fair: true }), (err) => {
      assert.ok(err instanceof InvalidArgumentError, err.stack)
      assert.equal(err.code, 'EINVALIDARG')
      assert.match(err.message, /"fair"/)
      return true
    })
    assert.throws(() => distLock(urls, { waitReplicas: { count: 1, timeoutMs: 100 } }), (err) => {
      assert.ok(err instanceof InvalidArgumentError, err.stack)
      assert.match(err.message, /"waitReplicas"/)
      return true
    })
    const m = manager()
    const name = uniqueName('refused')
    await assert.rejects(m.acquire(name, { fair: true }), isCode('EINVALIDARG', /"fair"/))
    await assert.rejects(
      m.acquire(name, { waitReplicas: { count: 1, timeoutMs: 100 } }),
      isCode('EINVALIDARG', /"waitReplicas"/),
    )
    await assert.rejects(m.using(name, { fair: true }, async () => {}), isCode('EINVALIDARG', /"fair"/))
    assert.equal(await m.isLocked(name), false, 'a refused call took nothing')
    assert.deepEqual(valuesOn(keyOf(name)), Array(N).fill(''))
  })

  test('driftFactor: the default 0.01, and a larger one shortens the validity', async () => {
    assert.equal(manager().options.driftFactor, 0.01)
    const m = manager({ driftFactor: 0.2 })
    const lock = await m.acquire(uniqueName('drift'), { ttl: 10_000 })
    const remaining = lock.validUntil - performance.now()
    // ttl − elapsed − (0.2 · ttl + 2 ms)
    assert.ok(remaining > 0 && remaining <= 10_000 - 2_000 - 2, `validity ${remaining} ms`)
    assert.equal(await lock.release(), true)
  })
})

// ---------------------------------------------------------------------------

describe('mutual exclusion', () => {
  test('4 managers x 4 tasks: a non-atomic GET + SET counter is exact, holders never overlap', async (t) => {
    const MANAGERS = 4
    const TASKS = 4
    const ITERATIONS = 6
    const name = uniqueName('counter')
    const counterKey = `counter:${name}`
    // The counter lives on one of the masters, read and written in two steps.
    const redis = new Redis(masters[0].url, { maxRetriesPerRequest: 1 })
    t.after(() => redis.disconnect())
    await redis.set(counterKey, '0')
    const ms = Array.from({ length: MANAGERS }, () => manager({ retryDelay: 20, ttl: 10_000 }))
    let inside = 0
    let overlaps = 0
    let contended = 0
    let releasedFalse = 0
    let increments = 0
    const holders = []
    const t0 = performance.now()
    await within(
      Promise.all(
        ms.flatMap((m) =>
          Array.from({ length: TASKS }, async () => {
            for (let i = 0; i < ITERATIONS; i++) {
              const lock = await m.acquire(name)
              assert.ok(lock, 'acquire without limits gave no lock')
              if (lock.acquiredOnAttempt > 1) contended++
              inside++
              if (inside > 1) overlaps++
              holders.push(lock.id)
              const value = Number(await redis.get(counterKey))
              await sleep(Math.floor(Math.random() * 3))
              await redis.set(counterKey, String(value + 1))
              increments++
              inside--
              // false: the lock was no longer held by a majority at its release.
              if (!(await lock.release())) releasedFalse++
            }
          }),
        ),
      ),
      60_000,
      'the workers',
    )
    const total = MANAGERS * TASKS * ITERATIONS
    const counter = Number(await redis.get(counterKey))
    t.diagnostic(
      `${total} critical sections in ${Math.round(performance.now() - t0)} ms, ${contended} after waiting; ` +
        `overlaps ${overlaps}, releases that found the lock gone ${releasedFalse}, counter ${counter}`,
    )
    assert.equal(increments, total)
    assert.equal(overlaps, 0, 'two holders at once')
    assert.equal(counter, total, 'lost increments')
    assert.equal(releasedFalse, 0, 'a holder found its lock gone at its release (ttl 10 s)')
    assert.equal(new Set(holders).size, total, 'a lock id granted twice')
    assert.deepEqual(valuesOn(keyOf(name)), Array(N).fill(''), 'a key left behind')
  })
})

// ---------------------------------------------------------------------------

describe('waiting', () => {
  test('a waiter with retryDelay 10 s is granted within 2 s of the release', async () => {
    const next = await wokenAtRelease(manager(), manager(), uniqueName('wake'))
    assert.ok(next.acquiredOnAttempt >= 2)
    assert.deepEqual(valuesOn(next.key), Array(N).fill(next.id))
    assert.equal(await next.release(), true)
  })
})

// ---------------------------------------------------------------------------

describe('auto-extension', () => {
  test('keeps the quorum lock past its ttl; a majority losing the key makes it emit lost', async () => {
    const m = manager({ ttl: 1_000 })
    const name = uniqueName('auto')
    const lock = await m.acquire(name, { autoExtend: true })
    const lostErrors = []
    lock.on('lost', (err) => lostErrors.push(err))
    const lost = once(lock, 'lost')
    await sleep(2_500)
    assert.deepEqual(lostErrors, [])
    assert.equal(await lock.isHeld(), true, 'not held after 2.5 ttl')
    assert.deepEqual(valuesOn(lock.key), Array(N).fill(lock.id))
    for (const mm of masters) assert.ok(Number(cli(mm.port, 'PTTL', lock.key)) > 0)

    // A minority loses it: still held by 3 of 5, still extended.
    for (const mm of masters.slice(0, 2)) cli(mm.port, 'DEL', lock.key)
    await sleep(1_500)
    assert.deepEqual(lostErrors, [], `lost with 3 of 5 still holding it: ${lostErrors.map((e) => e.message)}`)
    assert.equal(await lock.isHeld(), true)
    assert.equal(lock.isValid(), true)

    // A majority loses it.
    const deletedAt = performance.now()
    cli(masters[2].port, 'DEL', lock.key)
    const [err] = await within(lost, 5_000, "the 'lost' event")
    assert.ok(performance.now() - deletedAt < 5_000)
    assert.ok(err instanceof LockLostError, err && err.stack)
    assert.equal(err.code, 'ELOCKLOST')
    assert.equal(lock.lost, true)
    assert.equal(lock.isValid(), false)
    assert.equal(lock.signal.aborted, true)
    await sleep(1_200)
    assert.equal(lostErrors.length, 1, "'lost' more than once")
    assert.deepEqual(valuesOn(lock.key).slice(0, 3), ['', '', ''], 'the lost lock was recreated')
    assert.equal(await lock.release(), false, 'only 2 of 5 masters still held it')
    assert.deepEqual(valuesOn(lock.key), Array(N).fill(''), 'the release cleans up the minority too')
  })
})

// ---------------------------------------------------------------------------

describe('a slow minority (latency proxies in front of 3 of 5 masters)', () => {
  let proxies = []
  let slowUrls = []

  before(async () => {
    proxies = await Promise.all(masters.slice(0, 3).map((m) => new ChaosProxy(m.port).start()))
    slowUrls = [...proxies.map((p) => p.url), ...masters.slice(3).map((m) => m.url)]
  })

  after(async () => {
    for (const p of proxies) await p.close()
  })

  /** A manager through the proxies, connected (at no latency) before it is used. */
  async function slowManager() {
    for (const p of proxies) p.setLatency(0)
    const m = managers.open(slowUrls, { connectTimeout: 3_000, commandTimeout: 3_000 })
    const warm = await m.acquire(uniqueName('warm-up'))
    assert.ok(warm)
    assert.equal(await warm.release(), true)
    return m
  }

  test('an attempt longer than the validity budget is refused and leaves nothing locked', async () => {
    const m = await slowManager()
    const LATENCY = 150 // each way: 300 ms per round trip > ttl 200 ms
    const TTL = 200
    for (const p of proxies) p.setLatency(LATENCY)
    const single = uniqueName('slow-once')
    const t0 = performance.now()
    assert.equal(await m.acquire(single, { ttl: TTL, maxRetries: 0 }), false, 'granted past its validity')
    assert.ok(performance.now() - t0 >= 2 * LATENCY, 'it did ask the slow masters')
    const bounded = uniqueName('slow-timeout')
    const t1 = performance.now()
    assert.equal(await m.acquire(bounded, { ttl: TTL, timeout: 1_500 }), false, 'granted past its validity')
    const waited = performance.now() - t1
    assert.ok(waited < 1_500 + 1_500, `the timeout held: ${Math.round(waited)} ms`)
    for (const p of proxies) p.setLatency(0)
    // Whatever an attempt set expires after the ttl, if the undo did not
    // reach it first: wait for the last attempt's keys to reach the slow
    // masters (one way) and expire.
    await sleep(TTL + 3 * LATENCY + 300)
    for (const name of [single, bounded]) {
      assert.deepEqual(valuesOn(keyOf(name)), Array(N).fill(''), `left locked: ${name}`)
    }
    const direct = manager()
    for (const name of [single, bounded]) {
      assert.equal(await direct.isLocked(name), false)
      const lock = await direct.acquire(name, { maxRetries: 0 })
      assert.ok(lock, `${name} could not be taken afterwards`)
      assert.equal(await lock.release(), true)
    }
  })

  test('with 5 ms latency it is granted, and its validity is less than ttl minus the round trip', async () => {
    const m = await slowManager()
    const LATENCY = 5
    const TTL = 2_000
    for (const p of proxies) p.setLatency(LATENCY)
    const lock = await m.acquire(uniqueName('fast'), { ttl: TTL, maxRetries: 0 })
    const remaining = lock && lock.validUntil - performance.now()
    for (const p of proxies) p.setLatency(0)
    assert.ok(lock, 'refused at 5 ms latency')
    // validity = ttl − elapsed − (0.01 · ttl + 2 ms), elapsed ≥ one round trip.
    assert.ok(remaining > 0, `validity ${remaining}`)
    assert.ok(remaining < TTL - LATENCY, `validity ${remaining} ms, ttl ${TTL}, latency ${LATENCY} ms`)
    assert.ok(remaining <= TTL - 2 * LATENCY - (TTL * 0.01 + 2) + 1, `validity ${remaining} ms`)
    assert.deepEqual(valuesOn(lock.key), Array(N).fill(lock.id))
    assert.equal(await lock.release(), true)
  })
})

// ---------------------------------------------------------------------------

describe('outages', () => {
  after(async () => {
    // Whatever happened, the masters run again for what follows.
    for (const m of masters) await m.start()
  })

  test('2 of 5 masters down: acquire, isLocked, extend and release still work', async () => {
    const m = manager()
    const name = uniqueName('two-down')
    const warm = await m.acquire(uniqueName('warm'))
    await warm.release()
    await masters[3].stop()
    await masters[4].stop()
    const t0 = performance.now()
    const lock = await m.acquire(name, { maxRetries: 0 })
    assert.ok(lock, 'refused with 3 of 5 masters up')
    assert.ok(performance.now() - t0 < 5_000)
    assert.deepEqual(valuesOn(lock.key, masters.slice(0, 3)), Array(3).fill(lock.id))
    assert.equal(await m.isLocked(name), true)
    assert.equal(await lock.isHeld(), true)
    await lock.extend(10)
    assert.equal(await lock.release(), true)
    assert.deepEqual(valuesOn(lock.key, masters.slice(0, 3)), ['', '', ''])
    assert.equal(await m.isLocked(name), false)
  })

  test('3 of 5 down: ECONNECTION within 10 s, naming Redlock and each failed master; restarted, it works again', async () => {
    const m = manager()
    const held = await m.acquire(uniqueName('held'), { ttl: 30_000 }) // with 3 of 5 up
    assert.ok(held)
    await masters[2].stop()
    const down = masters.slice(2)
    const up = masters.slice(0, 2)

    const checkOutage = (op) => (err) => {
      assert.ok(err instanceof ConnectionError, err && err.stack)
      assert.equal(err.code, 'ECONNECTION')
      assert.ok(
        err.message.startsWith(`Redlock ${op}: only 2 of ${N} Redis masters answered, ${QUORUM} needed; failed: `),
        err.message,
      )
      for (const d of down) {
        // Named once: the master's own error already names it.
        const named = err.message.split(`${address(d)}: `).length - 1
        assert.equal(named, 1, `${address(d)} named ${named} times: ${err.message}`)
      }
      for (const u of up) assert.ok(!err.message.includes(address(u)), `${address(u)} answered: ${err.message}`)
      return true
    }

    const name = uniqueName('three-down')
    for (const options of [{ maxRetries: 0 }, {}]) {
      const t0 = performance.now()
      await assert.rejects(within(m.acquire(name, options), 15_000, 'acquire'), checkOutage('acquire'))
      const ms = performance.now() - t0
      assert.ok(ms < 10_000, `the outage took ${Math.round(ms)} ms to report`)
    }
    await assert.rejects(within(m.isLocked(name), 15_000, 'isLocked'), checkOutage('isLocked'))
    await assert.rejects(within(held.extend(30), 15_000, 'extend'), checkOutage('extend'))
    await assert.rejects(within(held.release(), 15_000, 'release'), checkOutage('release'))
    assert.deepEqual(valuesOn(keyOf(name), up), ['', ''], 'a failed attempt left keys behind')

    for (const d of down) await d.start()
    // Reconnection: bounded, a few failed calls allowed meanwhile.
    const t0 = performance.now()
    let lock = null
    let lastError = null
    while (lock === null) {
      assert.ok(performance.now() - t0 < 20_000, `still failing 20 s after the restart: ${lastError && lastError.message}`)
      try {
        lock = await m.acquire(name, { maxRetries: 0 })
        assert.ok(lock, 'refused after the restart')
      } catch (err) {
        if (err.code !== 'ECONNECTION') throw err
        lastError = err
        await sleep(200)
      }
    }
    assert.deepEqual(valuesOn(lock.key), Array(N).fill(lock.id))
    assert.equal(await lock.release(), true)
    // The restarted masters lost the held lock's key (no persistence): only 2
    // of 5 still held it, so its release says it was no longer held.
    assert.equal(await held.release(), false)
    assert.deepEqual(valuesOn(held.key), Array(N).fill(''))
  })
})

describe('evictionPolicy over Redlock', () => {
  test("each master is checked: one evicting master is warned about ('warn') and refuses the lock ('refuse')", async () => {
    const evicting = masters[1]
    cli(evicting.port, 'CONFIG', 'SET', 'maxmemory', '2mb')
    cli(evicting.port, 'CONFIG', 'SET', 'maxmemory-policy', 'volatile-lru')
    try {
      const m = manager()
      const warned = []
      m.on('warning', (w) => warned.push(w))
      const lock = await within(m.acquire(uniqueName('evict-warn')), 10_000, 'acquire (warn)')
      assert.ok(lock, "'warn' still grants")
      const deadline = performance.now() + 5_000
      while (warned.length === 0 && performance.now() < deadline) await sleep(20)
      await lock.release()
      await (await m.acquire(uniqueName('evict-warn-again'))).release()
      await sleep(200)
      assert.equal(warned.length, 1, JSON.stringify(warned))
      assert.equal(warned[0].code, 'EEVICTION')
      assert.equal(warned[0].server, address(evicting))
      assert.equal(warned[0].policy, 'volatile-lru')

      const strict = manager({ evictionPolicy: 'refuse' })
      const name = uniqueName('evict-refuse')
      await assert.rejects(within(strict.acquire(name), 10_000, 'acquire (refuse)'), isCode('EEVICTION', /volatile-lru/))
      assert.deepEqual(valuesOn(keyOf(name)), masters.map(() => ''), 'no master holds the key')
    } finally {
      cli(evicting.port, 'CONFIG', 'SET', 'maxmemory', '0')
      cli(evicting.port, 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction')
    }
  })
})
