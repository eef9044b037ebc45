'use strict'

// Auto-extension, loss detection ('lost' event, AbortSignal) and validity.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const { performance } = require('node:perf_hooks')
const distLock = require('..')
const { LockLostError, DistLockError } = distLock
const { startRedis } = require('./helpers/redis-server.js')
const { root, sleep, managerPool, within, uniqueNames, spawnNode, commandCalls } = require('./helpers/util.js')

const requireLib = `const distLock = require(${JSON.stringify(root)});`

let server
const servers = []
const managers = managerPool()
const children = new Set()
let unhandled = 0
const onUnhandled = (reason) => {
  unhandled += 1
  process.stderr.write(`unhandled rejection in auto-extend.test.js: ${reason && reason.stack}\n`)
}

before(async () => {
  process.on('unhandledRejection', onUnhandled)
  server = await startRedis()
  servers.push(server)
})

after(async () => {
  managers.closeAll()
  for (const child of children) child.kill('SIGKILL')
  for (const s of servers) await s.stop()
  process.off('unhandledRejection', onUnhandled)
})

function manager(options, url = server.url) {
  return managers.open(url, options)
}

async function extraServer() {
  const s = await startRedis()
  servers.push(s)
  return s
}

const uniqueName = uniqueNames('ae')

/** Counts 'lost' events and records when the signal aborted. */
function watch(lock) {
  const w = { lostCount: 0, lostErrors: [], abortedAt: null, lostAt: null }
  lock.on('lost', (err) => {
    w.lostCount += 1
    w.lostErrors.push(err)
    if (w.lostAt === null) w.lostAt = performance.now()
  })
  const signal = lock.signal
  w.aborted = new Promise((resolve) => {
    signal.addEventListener(
      'abort',
      () => {
        w.abortedAt = performance.now()
        resolve(signal.reason)
      },
      { once: true },
    )
  })
  return w
}

function assertLockLost(err, pattern) {
  assert.ok(err instanceof LockLostError, `expected a LockLostError, got ${err && err.stack}`)
  assert.ok(err instanceof DistLockError)
  assert.equal(err.code, 'ELOCKLOST')
  if (pattern) assert.match(err.message, pattern)
}

/** `node -e script args...`: see spawnNode. */
function run(script, args, { timeoutMs } = {}) {
  return spawnNode(['-e', script, ...args], { children, timeoutMs })
}

// ---------------------------------------------------------------------------

describe('auto-extension keeps the lock', () => {
  test('ttl 300 ms held for >= 900 ms: still held, PTTL > 0, others refused throughout', async () => {
    const m = manager()
    const other = manager()
    const name = uniqueName('keep')
    const lock = await m.acquire(name, { ttl: 300, autoExtend: true })
    assert.equal(lock.autoExtend, true)
    const w = watch(lock)
    const start = performance.now()
    let checks = 0
    while (performance.now() - start < 1_000) {
      const now = performance.now()
      assert.ok(lock.validUntil > now, `validUntil ${lock.validUntil} not after now ${now}`)
      assert.ok(lock.validUntil <= now + 300, 'validUntil is further than ttl away')
      assert.equal(lock.isValid(), true)
      assert.equal(await lock.isHeld(), true)
      const pttl = Number(server.cli('PTTL', lock.key))
      assert.ok(pttl > 0 && pttl <= 300, `PTTL ${pttl}`)
      assert.equal(await other.acquire(name, { maxRetries: 0 }), false)
      assert.equal(server.cli('GET', lock.key), lock.id)
      checks += 1
      await sleep(50)
    }
    assert.ok(performance.now() - start >= 900)
    assert.ok(checks >= 5)
    assert.equal(w.lostCount, 0)
    assert.equal(lock.signal.aborted, false)
    assert.equal(lock.lost, false)
    assert.equal(await lock.release(), true)
    assert.equal(server.cli('EXISTS', lock.key), '0')
  })

  test('manager option autoExtend: true applies to every acquire; per call false overrides it', async () => {
    const m = manager({ autoExtend: true, ttl: 300 })
    assert.equal(m.options.autoExtend, true)
    const a = await m.acquire(uniqueName('mgr'))
    const b = await m.acquire(uniqueName('mgr'), { autoExtend: false })
    assert.equal(a.autoExtend, true)
    assert.equal(b.autoExtend, false)
    await sleep(700)
    assert.equal(await a.isHeld(), true, 'the manager-level autoExtend lock expired')
    assert.equal(await b.isHeld(), false, 'the lock with autoExtend: false was extended')
    assert.equal(a.lost, false)
    assert.equal(b.lost, true)
    await a.release()
  })

  test('after extend(seconds) auto-extension renews the new TTL', async () => {
    const m = manager()
    const lock = await m.acquire(uniqueName('renew'), { ttl: 300, autoExtend: true })
    await lock.extend(3) // index.js: "Auto-extension then renews this TTL"
    // Renewals of 3 s every ~1 s: the PTTL stays high and goes up again
    // between the samples. Renewals of the old 300 ms would keep it <= 300;
    // no renewals at all would make it only go down.
    await sleep(600)
    const pttl1 = Number(server.cli('PTTL', lock.key))
    await sleep(800)
    const pttl2 = Number(server.cli('PTTL', lock.key))
    assert.ok(pttl1 > 1_000 && pttl1 <= 3_000, `PTTL ${pttl1} at 600 ms`)
    assert.ok(pttl2 > pttl1 && pttl2 <= 3_000, `PTTL ${pttl2} at 1400 ms (was ${pttl1}): not renewed`)
    assert.equal(lock.lost, false)
    await lock.release()
  })
})

describe('auto-extension rides out short trouble', () => {
  test('dropped connections (CLIENT KILL) do not lose the lock', async () => {
    const own = await extraServer()
    const m = manager(undefined, own.url)
    const lock = await m.acquire(uniqueName('drops'), { ttl: 300, autoExtend: true })
    const w = watch(lock)
    for (let i = 0; i < 6; i++) {
      await sleep(150)
      own.cli('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    }
    await sleep(300)
    assert.equal(w.lostCount, 0, w.lostErrors.map((e) => e.message).join('; '))
    assert.equal(await lock.isHeld(), true)
    assert.ok(Number(own.cli('PTTL', lock.key)) > 0)
    assert.equal(await lock.release(), true)
  })

  test('a stall shorter than the validity (SIGSTOP 250 ms, ttl 600) does not lose the lock', async () => {
    const own = await extraServer()
    const m = manager(undefined, own.url)
    const lock = await m.acquire(uniqueName('short-stall'), { ttl: 600, autoExtend: true })
    const w = watch(lock)
    await sleep(100)
    own.proc.kill('SIGSTOP')
    await sleep(250)
    own.proc.kill('SIGCONT')
    await sleep(700)
    assert.equal(w.lostCount, 0, w.lostErrors.map((e) => e.message).join('; '))
    assert.equal(await lock.isHeld(), true)
    assert.ok(lock.validUntil > performance.now())
    assert.equal(await lock.release(), true)
  })
})

describe('auto-extension finds the lock lost', () => {
  test('key deleted behind its back: signal aborts with LockLostError, "lost" once', async (t) => {
    const m = manager()
    const lock = await m.acquire(uniqueName('del'), { ttl: 300, autoExtend: true })
    const w = watch(lock)
    await sleep(250)
    const deletedAt = performance.now()
    assert.equal(server.cli('DEL', lock.key), '1')
    const reason = await within(w.aborted, 2_000, 'signal abort after DEL')
    const ms = w.abortedAt - deletedAt
    assertLockLost(reason)
    assert.equal(lock.signal.reason, reason)
    assert.equal(lock.lost, true)
    assert.equal(lock.isValid(), false)
    await sleep(500)
    assert.equal(w.lostCount, 1, `'lost' fired ${w.lostCount} times`)
    assertLockLost(w.lostErrors[0])
    assert.equal(server.cli('EXISTS', lock.key), '0', 'the lost lock was recreated')
    assert.equal(await lock.release(), false)
    await sleep(300)
    assert.equal(w.lostCount, 1)
    t.diagnostic(`signal aborted ${ms.toFixed(0)} ms after DEL (ttl 300, extension every 100 ms)`)
  })

  test('key overwritten by another owner: lost, and the other owner\'s key is untouched', async (t) => {
    const m = manager()
    const lock = await m.acquire(uniqueName('other'), { ttl: 300, autoExtend: true })
    const w = watch(lock)
    await sleep(150)
    const setAt = performance.now()
    assert.equal(server.cli('SET', lock.key, 'other-owner', 'PX', '10000'), 'OK')
    const reason = await within(w.aborted, 2_000, 'signal abort after SET')
    assertLockLost(reason)
    assert.equal(lock.lost, true)
    await sleep(400)
    assert.equal(w.lostCount, 1)
    assert.equal(server.cli('GET', lock.key), 'other-owner')
    const pttl = Number(server.cli('PTTL', lock.key))
    assert.ok(pttl > 8_000 && pttl <= 10_000, `the other owner's PTTL was changed: ${pttl}`)
    assert.equal(await lock.release(), false)
    assert.equal(server.cli('GET', lock.key), 'other-owner')
    t.diagnostic(`signal aborted ${(w.abortedAt - setAt).toFixed(0)} ms after the overwrite`)
  })

  test('a signal first read after the loss is already aborted', async () => {
    const m = manager()
    const lock = await m.acquire(uniqueName('late-signal'), { ttl: 300, autoExtend: true })
    const lost = once(lock, 'lost')
    server.cli('DEL', lock.key)
    const [err] = await within(lost, 2_000, "'lost' after DEL")
    assertLockLost(err)
    assert.equal(lock.signal.aborted, true)
    assertLockLost(lock.signal.reason)
  })

  test('Redis killed while auto-extending: lost once validity runs out, no unhandled rejection', async (t) => {
    const down = await extraServer()
    const m = manager(undefined, down.url)
    const lock = await m.acquire(uniqueName('kill'), { ttl: 300, autoExtend: true })
    const w = watch(lock)
    let remainingAtLoss = null
    lock.on('lost', () => {
      remainingAtLoss = lock.validUntil - performance.now()
    })
    await sleep(350) // at least one extension went through
    assert.equal(lock.lost, false)
    const unhandledBefore = unhandled
    const stoppedAt = performance.now()
    await down.stop()
    const reason = await within(w.aborted, 3_000, 'signal abort after the Redis kill')
    const ms = w.abortedAt - stoppedAt
    assertLockLost(reason, /validity/)
    assert.ok(ms <= 1_500, `lost only ${ms.toFixed(0)} ms after the kill (ttl 300)`)
    // It kept trying until the validity was spent, not earlier.
    assert.ok(remainingAtLoss !== null && remainingAtLoss <= 1, `reported lost with ${remainingAtLoss} ms of validity left`)
    await sleep(500)
    assert.equal(w.lostCount, 1)
    assert.equal(unhandled, unhandledBefore, 'an unhandled rejection was seen')
    t.diagnostic(`lost ${ms.toFixed(0)} ms after the Redis kill (ttl 300)`)
  })

  test('Redis stalled (SIGSTOP) while auto-extending: lost once validity runs out, not after the command timeout', async (t) => {
    const stalled = await extraServer()
    const m = manager({ commandTimeout: 5_000 }, stalled.url)
    const lock = await m.acquire(uniqueName('stall'), { ttl: 300, autoExtend: true })
    const w = watch(lock)
    await sleep(200)
    const stoppedAt = performance.now()
    stalled.proc.kill('SIGSTOP')
    try {
      const reason = await within(w.aborted, 3_000, 'signal abort on a stalled server')
      assertLockLost(reason, /validity/)
      const ms = w.abortedAt - stoppedAt
      assert.ok(ms <= 1_500, `lost ${ms.toFixed(0)} ms after the stall (ttl 300)`)
      t.diagnostic(`lost ${ms.toFixed(0)} ms after the stall (ttl 300)`)
    } finally {
      stalled.proc.kill('SIGCONT')
    }
    await sleep(300)
    assert.equal(w.lostCount, 1)
    // The extension queued during the stall did not bring the lock back.
    assert.equal(stalled.cli('EXISTS', lock.key), '0')
  })

  test('Redis killed, in a child process: lost is signalled and the child exits by itself with code 0', async (t) => {
    const down = await extraServer()
    const script = `${requireLib}
      let unhandled = 0
      process.on('unhandledRejection', () => { unhandled++ })
      ;(async () => {
        const m = distLock(process.argv[1], { ttl: 300 })
        const lock = await m.acquire('child-kill', { autoExtend: true })
        // The auto-extension does not keep the process alive: this timer
        // does, until the loss is reported; then nothing may be left.
        const keepAlive = setInterval(() => {}, 1000)
        lock.on('lost', (err) => {
          clearInterval(keepAlive)
          setTimeout(() => console.log('lost ' + JSON.stringify({
            code: err.code, name: err.name, aborted: lock.signal.aborted, unhandled,
          })), 200)
        })
        console.log('acquired')
      })()`
    const child = run(script, [down.url], { timeoutMs: 15_000 })
    await child.waitFor('acquired')
    await sleep(200)
    const stoppedAt = performance.now()
    await down.stop()
    const lostAt = await child.waitFor('lost ')
    const r = await child.exited
    assert.equal(r.code, 0, `exit ${r.code} ${r.signal}; stderr: ${r.stderr}`)
    assert.equal(r.signal, null)
    const line = r.stdout.split('\n').find((l) => l.startsWith('lost '))
    const info = JSON.parse(line.slice(5))
    assert.deepEqual(info, { code: 'ELOCKLOST', name: 'LockLostError', aborted: true, unhandled: 0 })
    assert.equal(r.stderr, '')
    // lostAt includes the child's 200 ms delay before printing.
    assert.ok(lostAt - stoppedAt <= 3_000, `the child reported the loss ${lostAt - stoppedAt} ms after the kill`)
    t.diagnostic(`child printed 'lost' ${(lostAt - stoppedAt - 200).toFixed(0)} ms (+200 ms print delay) after the kill`)
  })
})

describe('what stops auto-extension', () => {
  test('release stops it: key gone, no extension command sent, no "lost" over 3 x ttl', async () => {
    const own = await extraServer()
    const m = manager(undefined, own.url)
    const lock = await m.acquire(uniqueName('release'), { ttl: 300, autoExtend: true })
    const w = watch(lock)
    await sleep(350)
    const evalsBefore = evalCalls(own)
    assert.ok(evalsBefore >= 3, `acquire + extensions should have run scripts (${evalsBefore})`)
    assert.equal(await lock.release(), true)
    assert.equal(own.cli('EXISTS', lock.key), '0')
    const afterRelease = evalCalls(own)
    // Another owner takes the key: an extension still running would find it
    // (and must not touch it).
    own.cli('SET', lock.key, 'next-owner', 'PX', '60000')
    await sleep(900)
    assert.equal(evalCalls(own), afterRelease, 'scripts still ran after release')
    assert.equal(w.lostCount, 0)
    assert.equal(lock.signal.aborted, false)
    assert.equal(lock.lost, false)
    assert.equal(lock.isValid(), false)
    assert.equal(own.cli('GET', lock.key), 'next-owner')
  })

  test('close() while auto-extending: "lost" fires with ELOCKLOST mentioning the close', async () => {
    const m = distLock(server.url, { ttl: 300 }) // closed here
    const lock = await m.acquire(uniqueName('close'), { autoExtend: true })
    const w = watch(lock)
    // Already lost or released before the close: nothing more is reported.
    const gone = await m.acquire(uniqueName('close-gone'), { autoExtend: true })
    const wGone = watch(gone)
    const done = await m.acquire(uniqueName('close-done'), { autoExtend: true })
    const wDone = watch(done)
    server.cli('DEL', gone.key)
    await within(wGone.aborted, 2_000, 'loss of the deleted lock')
    assert.equal(await done.release(), true)
    await sleep(50)
    const closedAt = performance.now()
    await m.close()
    const reason = await within(w.aborted, 2_000, 'signal abort after close()')
    assertLockLost(reason, /closed/)
    assert.ok(w.abortedAt - closedAt < 1_000)
    await sleep(300)
    assert.equal(w.lostCount, 1)
    assertLockLost(w.lostErrors[0], /closed/)
    assert.equal(lock.lost, true)
    assert.equal(wGone.lostCount, 1)
    assert.doesNotMatch(wGone.lostErrors[0].message, /closed/)
    assert.equal(wDone.lostCount, 0)
    assert.equal(done.signal.aborted, false)
    // The lock is not released by close(); it expires on its own.
    await sleep(300)
    assert.equal(server.cli('EXISTS', lock.key), '0')
  })

  test('close() marks auto-extended locks lost before it resolves (signal, isValid, "lost"), others not', async () => {
    const m = distLock(server.url, { ttl: 10_000 }) // closed here
    const lock = await m.acquire(uniqueName('close-sync'), { autoExtend: true })
    const plain = await m.acquire(uniqueName('close-sync-plain'))
    const lostErrors = []
    lock.on('lost', (err) => lostErrors.push(err))
    const managerLost = []
    m.on('lost', (e) => managerLost.push(e))
    const signal = lock.signal
    assert.equal(lock.isValid(), true)
    await m.close()
    // Checked synchronously after the close resolved: no later tick needed.
    assert.equal(signal.aborted, true, 'signal aborted when close() resolves')
    assertLockLost(signal.reason, /closed/)
    assert.equal(lock.isValid(), false)
    assert.equal(lock.lost, true)
    assert.equal(lostErrors.length, 1, "'lost' emitted when close() resolves")
    assert.equal(managerLost.length, 1)
    // The native report of the same loss that follows is not a second one.
    await sleep(300)
    assert.equal(lostErrors.length, 1)
    assert.equal(managerLost.length, 1)
    // A lock without auto-extension stays valid until its ttl runs out.
    assert.equal(plain.isValid(), true)
  })

  test('a child holding an autoExtend lock that it releases exits by itself', async () => {
    const script = `${requireLib}
      ;(async () => {
        const m = distLock(process.argv[1], { ttl: 300 })
        const lock = await m.acquire('child-release', { autoExtend: true })
        await new Promise((r) => setTimeout(r, 500))
        console.log('held ' + (await lock.isHeld()))
        console.log('released ' + (await lock.release()))
      })()`
    const t0 = performance.now()
    const r = await run(script, [server.url]).exited
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, 'held true\nreleased true\n')
    assert.ok(performance.now() - t0 < 8_000)
    assert.equal(server.cli('EXISTS', 'lock:child-release'), '0')
  })

  test('a child holding an autoExtend lock it never releases still exits by itself', async () => {
    const script = `${requireLib}
      ;(async () => {
        const m = distLock(process.argv[1], { ttl: 2000 })
        const lock = await m.acquire('child-forget', { autoExtend: true })
        console.log('acquired ' + lock.fencingToken)
      })()`
    const r = await run(script, [server.url]).exited
    assert.equal(r.code, 0, r.stderr)
    assert.match(r.stdout, /^acquired \d+\n$/)
  })
})

describe('after a release that failed (Redis down)', () => {
  // release() rejected, so `released` is false: the holder still has the lock
  // as far as it knows. When its validity runs out it must be reported lost
  // like any lock that was not released.
  for (const autoExtend of [false, true]) {
    test(`autoExtend ${autoExtend}: the lock is reported lost once its validity runs out`, async () => {
      const own = await extraServer()
      const m = manager({ connectTimeout: 200, commandTimeout: 300 }, own.url)
      const lock = await m.acquire(uniqueName(`failed-release-${autoExtend}`), { ttl: 400, autoExtend })
      const w = watch(lock)
      await own.stop()
      await assert.rejects(lock.release(), { code: 'ECONNECTION' })
      assert.equal(lock.released, false)
      await sleep(1_000) // > ttl
      assert.equal(lock.isValid(), false)
      assert.equal(lock.signal.aborted, true, 'the validity ran out, yet the signal did not abort')
      assert.equal(w.lostCount, 1)
      assert.equal(lock.lost, true)
    })
  }
})

describe('without auto-extension', () => {
  test('ttl 200: the signal aborts after expiry and "lost" fires once', async () => {
    const m = manager()
    const lock = await m.acquire(uniqueName('expire'), { ttl: 200 })
    assert.equal(lock.autoExtend, false)
    const w = watch(lock)
    const validUntil = lock.validUntil
    await sleep(50)
    assert.equal(lock.signal.aborted, false, 'lost before its validity ran out')
    assert.equal(lock.isValid(), true)
    const reason = await within(w.aborted, 2_000, 'signal abort after expiry')
    assert.ok(w.abortedAt >= validUntil - 1, 'aborted before validUntil')
    assertLockLost(reason)
    assert.equal(lock.lost, true)
    assert.equal(lock.isValid(), false)
    await sleep(300)
    assert.equal(w.lostCount, 1)
    assert.equal(await lock.release(), false)
  })

  test('extend() moves validUntil forward and postpones the loss', async () => {
    const m = manager()
    const lock = await m.acquire(uniqueName('extend'), { ttl: 200 })
    const w = watch(lock)
    const first = lock.validUntil
    await sleep(100)
    await lock.extend(0.6)
    assert.ok(lock.validUntil > first + 300, `validUntil moved from ${first} to ${lock.validUntil}`)
    await sleep(250) // past the first validity
    assert.equal(lock.lost, false, 'lost although extended')
    assert.equal(lock.signal.aborted, false)
    await within(w.aborted, 2_000, 'signal abort after the extended ttl')
    assert.equal(w.lostCount, 1)
  })

  test('extend() on a lock whose key was deleted rejects ELOCKLOST and marks it lost', async () => {
    const m = manager()
    const lock = await m.acquire(uniqueName('extend-del'), { ttl: 10_000 })
    const w = watch(lock)
    server.cli('DEL', lock.key)
    await assert.rejects(lock.extend(5), (err) => {
      assertLockLost(err)
      return true
    })
    assert.equal(lock.lost, true)
    assert.equal(lock.signal.aborted, true)
    assertLockLost(lock.signal.reason)
    assert.equal(w.lostCount, 1)
    assert.equal(lock.isValid(), false)
    assert.equal(server.cli('EXISTS', lock.key), '0')
    await assert.rejects(lock.extend(5), { code: 'ELOCKLOST' })
    assert.equal(w.lostCount, 1, "'lost' fired again")
  })

  test('release() stops everything: no "lost" after the ttl', async () => {
    const m = manager()
    const lock = await m.acquire(uniqueName('release-expiry'), { ttl: 200 })
    const w = watch(lock)
    assert.equal(await lock.release(), true)
    await sleep(500)
    assert.equal(w.lostCount, 0)
    assert.equal(lock.signal.aborted, false)
    assert.equal(lock.isValid(), false)
  })
})

describe('validity', () => {
  test('validUntil = send time + ttl - (ttl * 0.01 + 2 ms)', async () => {
    const m = manager()
    const before = performance.now()
    const lock = await m.acquire(uniqueName('valid'), { ttl: 10_000 })
    const afterGrant = performance.now()
    const v = lock.validUntil
    const validity = 10_000 - (100 + 2)
    assert.ok(v >= before + validity - 1, `validUntil ${v - before} ms after the call`)
    assert.ok(v <= afterGrant + validity + 1, `validUntil ${v - afterGrant} ms after the grant`)
    assert.ok(Math.abs(lock.validUntil - v) < 1, 'validUntil moves on its own')
    assert.equal(lock.isValid(), true)

    await sleep(20)
    const beforeExtend = performance.now()
    await lock.extend(5)
    const afterExtend = performance.now()
    const v2 = lock.validUntil
    const validity2 = 5_000 - (50 + 2)
    assert.ok(v2 >= beforeExtend + validity2 - 1 && v2 <= afterExtend + validity2 + 1, `validUntil after extend: ${v2 - beforeExtend}`)
    assert.equal(await lock.release(), true)
    assert.equal(lock.isValid(), false)
    assert.equal(lock.released, true)
  })

  test('isValid() is false after release, also for an auto-extended lock', async () => {
    const m = manager()
    const lock = await m.acquire(uniqueName('valid-ae'), { ttl: 300, autoExtend: true })
    assert.equal(lock.isValid(), true)
    await lock.release()
    assert.equal(lock.isValid(), false)
  })
})

test('no unhandled rejection in this file', () => {
  assert.equal(unhandled, 0)
})

/** How many times scripts ran on `s` (EVAL + EVALSHA). */
function evalCalls(s) {
  const calls = commandCalls(s.cli('INFO', 'commandstats'))
  return (calls.eval ?? 0) + (calls.evalsha ?? 0)
}
