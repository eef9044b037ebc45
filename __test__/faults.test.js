'use strict'

// Faults: an unreachable or silent server, Redis dying and coming back, an
// error reply, and close(). Every call must settle within a bound with the
// documented error code; none may hang or be taken for lock contention.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const distLock = require('..')
const { ConnectionError, RedisError, ClosedError, DistLockError, LockLostError } = distLock
const { startRedis, freePort } = require('./helpers/redis-server.js')
const { sleep, managerPool } = require('./helpers/util.js')

/** Runs `fn`, returns { value } or { err }, plus the elapsed milliseconds. */
async function timed(fn) {
  const t0 = performance.now()
  try {
    const value = await fn()
    return { value, ms: performance.now() - t0 }
  } catch (err) {
    return { err, ms: performance.now() - t0 }
  }
}

/** Asserts `outcome` is a rejection with `code`, an instance of `ErrorClass`. */
function assertRejected(outcome, code, ErrorClass) {
  assert.ok(outcome.err, `expected a rejection with ${code}, got the value ${String(outcome.value)}`)
  assert.equal(outcome.err.code, code, `unexpected error: ${outcome.err.stack}`)
  assert.ok(outcome.err instanceof ErrorClass, `not a ${ErrorClass.name}: ${outcome.err.stack}`)
  assert.ok(outcome.err instanceof DistLockError)
}

/** The callback form of `acquire`, as { err, lock, returned, ms }. */
function acquireWithCallback(manager, name) {
  const t0 = performance.now()
  return new Promise((resolve) => {
    let returned
    // The callback runs on a later tick, after `returned` is set.
    returned = manager.acquire(name, (err, lock) => resolve({ err, lock, returned, ms: performance.now() - t0 }))
  })
}

const managers = managerPool()
function manager(url, options) {
  return managers.open(url, options)
}

after(() => {
  managers.closeAll()
})

describe('unreachable server (nothing listens on the port)', () => {
  let url
  before(async () => {
    url = `redis://127.0.0.1:${await freePort()}`
  })

  test('acquire rejects with ECONNECTION quickly, even with unlimited retries', async (t) => {
    const m = manager(url, { connectTimeout: 500, maxRetries: -1, retryDelay: 10 })
    const first = await timed(() => m.acquire('unreachable'))
    assertRejected(first, 'ECONNECTION', ConnectionError)
    assert.ok(first.ms < 5000, `took ${first.ms} ms`)
    // The manager stays usable and fails the same way again.
    const second = await timed(() => m.acquire('unreachable'))
    assertRejected(second, 'ECONNECTION', ConnectionError)
    assert.ok(second.ms < 5000, `took ${second.ms} ms`)
    t.diagnostic(`unreachable: failed in ${first.ms.toFixed(0)} ms, then ${second.ms.toFixed(0)} ms`)
  })

  test('callback form: called once with a ConnectionError and no lock', async () => {
    const m = manager(url, { connectTimeout: 500, maxRetries: -1 })
    let calls = 0
    const t0 = performance.now()
    const result = await new Promise((resolve) => {
      const returned = m.acquire('unreachable-cb', (err, lock) => {
        calls++
        resolve({ err, lock, returned, ms: performance.now() - t0 })
      })
      assert.equal(returned, undefined)
    })
    assert.ok(result.err instanceof ConnectionError)
    assert.equal(result.err.code, 'ECONNECTION')
    assert.equal(result.lock, undefined)
    assert.ok(result.ms < 5000, `took ${result.ms} ms`)
    await sleep(100)
    assert.equal(calls, 1)
  })
})

describe('blackhole server (accepts connections, never answers)', () => {
  let hole
  let accepted = 0
  const sockets = new Set()

  before(async () => {
    hole = net.createServer((socket) => {
      accepted++
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => sockets.delete(socket))
      // Reads and ignores everything: no reply is ever sent.
      socket.resume()
    })
    await new Promise((resolve) => hole.listen(0, '127.0.0.1', resolve))
  })

  after(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => hole.close(resolve))
  })

  test('acquire rejects with ECONNECTION within the bound; concurrent calls too', async (t) => {
    const url = `redis://127.0.0.1:${hole.address().port}`
    const m = manager(url, { connectTimeout: 300, commandTimeout: 500, maxRetries: -1, retryDelay: 10 })
    const outcomes = await Promise.all(
      Array.from({ length: 5 }, (_, i) => timed(() => m.acquire(`blackhole-${i}`))),
    )
    for (const outcome of outcomes) {
      assertRejected(outcome, 'ECONNECTION', ConnectionError)
      assert.ok(outcome.ms < 5000, `took ${outcome.ms} ms`)
    }
    // It really talked to the blackhole (rather than being refused).
    assert.ok(accepted >= 1, 'the blackhole server saw no connection')
    const again = await timed(() => m.acquire('blackhole-again'))
    assertRejected(again, 'ECONNECTION', ConnectionError)
    assert.ok(again.ms < 5000, `took ${again.ms} ms`)
    t.diagnostic(
      `blackhole: failed in ${Math.max(...outcomes.map((o) => o.ms)).toFixed(0)} ms (5 concurrent), ` +
        `then ${again.ms.toFixed(0)} ms; connections accepted: ${accepted}`,
    )
  })

  test('callback form rejects the same way', async () => {
    const url = `redis://127.0.0.1:${hole.address().port}`
    const m = manager(url, { connectTimeout: 300, commandTimeout: 500 })
    const result = await acquireWithCallback(m, 'blackhole-cb')
    assert.ok(result.err instanceof ConnectionError, String(result.err))
    assert.equal(result.lock, undefined)
    assert.equal(result.returned, undefined)
    assert.ok(result.ms < 5000, `took ${result.ms} ms`)
  })
})

describe('Redis killed and restarted on the same port', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.stop()
  })

  test('calls fail with ECONNECTION while down; the same manager works after restart', async (t) => {
    const m = manager(server.url, { connectTimeout: 500, commandTimeout: 1000, maxRetries: -1, retryDelay: 20 })
    const lock = await m.acquire('restart-held')
    assert.ok(lock, 'acquire gave no lock')
    assert.equal(server.cli('GET', lock.key), lock.id)

    // A waiter on the held lock: Redis dying must end it, not leave it retrying.
    const waiter = timed(() => m.acquire('restart-held'))
    await sleep(100)

    await server.stop()

    const waited = await waiter
    assertRejected(waited, 'ECONNECTION', ConnectionError)
    assert.ok(waited.ms < 100 + 5000, `the waiter took ${waited.ms} ms`)

    const released = await timed(() => lock.release())
    assertRejected(released, 'ECONNECTION', ConnectionError)
    assert.ok(released.ms < 5000, `release took ${released.ms} ms`)

    const extended = await timed(() => lock.extend(10))
    assertRejected(extended, 'ECONNECTION', ConnectionError)
    assert.ok(extended.ms < 5000, `extend took ${extended.ms} ms`)

    for (let i = 0; i < 3; i++) {
      const acquired = await timed(() => m.acquire('restart-other'))
      assertRejected(acquired, 'ECONNECTION', ConnectionError)
      assert.ok(acquired.ms < 5000, `acquire took ${acquired.ms} ms`)
    }

    await server.start()

    // The manager reconnects by itself; allow a few tries for that.
    const t0 = performance.now()
    let fresh
    let tries = 0
    const errors = []
    while (!fresh && performance.now() - t0 < 8000) {
      tries++
      const outcome = await timed(() => m.acquire('restart-after'))
      if (outcome.err) {
        assert.equal(outcome.err.code, 'ECONNECTION', outcome.err.stack)
        errors.push(outcome.err.message)
        await sleep(100)
      } else {
        fresh = outcome.value
      }
    }
    const reconnectMs = performance.now() - t0
    assert.ok(fresh, `no lock within 8 s after the restart; errors: ${errors.join(' | ')}`)
    assert.equal(server.cli('GET', fresh.key), fresh.id)
    t.diagnostic(
      `reconnect: lock granted ${reconnectMs.toFixed(0)} ms after restart, on try ${tries}` +
        (errors.length ? ` (earlier: ${errors.join(' | ')})` : ''),
    )

    // No persistence: the old lock is gone with the old server process.
    assert.equal(server.cli('EXISTS', lock.key), '0')
    assert.equal(await lock.release(), false)
    await assert.rejects(lock.extend(10), LockLostError)

    assert.equal(await fresh.release(), true)
    assert.equal(server.cli('EXISTS', fresh.key), '0')
  })

  // Once Redis is back, the next call must work: a ConnectionError then
  // would tell the caller Redis is unreachable while it is up and serving.
  test('a manager that saw the outage works on its first call once Redis is back', async () => {
    const m = manager(server.url, { connectTimeout: 500, commandTimeout: 1000 })
    assert.equal(await (await m.acquire('back-1')).release(), true)
    await server.stop()
    assertRejected(await timed(() => m.acquire('back-1')), 'ECONNECTION', ConnectionError)
    await sleep(500) // the reconnection attempt started by that failure ends too
    await server.start()
    await sleep(1000) // Redis has been up and answering for a second
    assert.equal(server.cli('PING'), 'PONG')
    const outcome = await timed(() => m.acquire('back-1'))
    assert.ok(!outcome.err, `first call 1 s after Redis came back failed: ${outcome.err && outcome.err.message}`)
    assert.equal(await outcome.value.release(), true)
  })

  test('a manager idle while Redis restarted works on its next call', async () => {
    const m = manager(server.url, { connectTimeout: 500, commandTimeout: 1000 })
    assert.equal(await (await m.acquire('back-2')).release(), true)
    await server.stop()
    await server.start()
    await sleep(500)
    assert.equal(server.cli('PING'), 'PONG')
    const outcome = await timed(() => m.acquire('back-2'))
    assert.ok(!outcome.err, `first call after an idle restart failed: ${outcome.err && outcome.err.message}`)
    assert.equal(await outcome.value.release(), true)
  })
})

describe('stalled server (SIGSTOP) on an open connection', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    if (server.proc) server.proc.kill('SIGCONT')
    await server.stop()
  })

  test('commands fail with ECONNECTION within the bound, and work once it resumes', async (t) => {
    const m = manager(server.url, { connectTimeout: 300, commandTimeout: 500, maxRetries: -1, retryDelay: 10 })
    const lock = await m.acquire('stalled')
    assert.ok(lock)
    server.proc.kill('SIGSTOP')
    let outcomes
    try {
      outcomes = await Promise.all([
        timed(() => m.acquire('stalled-other')),
        timed(() => m.acquire('stalled')),
        timed(() => lock.release()),
      ])
    } finally {
      server.proc.kill('SIGCONT')
    }
    for (const outcome of outcomes) {
      assertRejected(outcome, 'ECONNECTION', ConnectionError)
      assert.ok(outcome.ms < 5000, `took ${outcome.ms} ms`)
    }
    t.diagnostic(`stalled: failed in ${Math.max(...outcomes.map((o) => o.ms)).toFixed(0)} ms`)

    // The release that timed out can be retried. (The timed-out EVALSHA may
    // still run once the server resumes, so `false` is a valid answer too.)
    const t0 = performance.now()
    let released
    while (released === undefined && performance.now() - t0 < 8000) {
      const outcome = await timed(() => lock.release())
      if (outcome.err) {
        assert.equal(outcome.err.code, 'ECONNECTION', outcome.err.stack)
        await sleep(100)
      } else {
        released = outcome.value
      }
    }
    assert.equal(typeof released, 'boolean', 'the release was never answered after the server resumed')
    assert.equal(server.cli('EXISTS', lock.key), '0')
    const again = await m.acquire('stalled')
    assert.ok(again)
    assert.equal(await again.release(), true)
  })

  // index.d.ts: close() "ends the connection; pending and later calls fail
  // with ClosedError". An acquire whose SET is in flight is pending too.
  test('close() ends an acquire in flight on a stalled server with ECLOSED, promptly', async () => {
    const m = manager(server.url, { connectTimeout: 500, commandTimeout: 3000 })
    assert.equal(await (await m.acquire('stalled-close-warmup')).release(), true)
    server.proc.kill('SIGSTOP')
    let outcome
    let afterClose
    try {
      const pending = timed(() => m.acquire('stalled-close'))
      await sleep(100)
      const t0 = performance.now()
      await m.close()
      outcome = await pending
      afterClose = performance.now() - t0
    } finally {
      server.proc.kill('SIGCONT')
    }
    assert.ok(outcome.err, 'the acquire was granted after close()')
    assert.equal(outcome.err.code, 'ECLOSED', `after close(): ${outcome.err.message} (${afterClose.toFixed(0)} ms later)`)
    assert.ok(afterClose < 1000, `the acquire ended ${afterClose.toFixed(0)} ms after close()`)
  })
})

describe('Redis error reply', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.stop()
  })

  test('OOM ends acquire with EREDIS (not taken for contention); works again after', async () => {
    const m = manager(server.url, { maxRetries: -1, retryDelay: 10 })
    // Connect first, so that the error comes from the SET itself.
    await (await m.acquire('oom-warmup')).release()
    server.cli('CONFIG', 'SET', 'maxmemory-policy', 'noeviction')
    server.cli('CONFIG', 'SET', 'maxmemory', '1')
    let outcome
    try {
      outcome = await timed(() => m.acquire('oom'))
    } finally {
      server.cli('CONFIG', 'SET', 'maxmemory', '0')
    }
    assertRejected(outcome, 'EREDIS', RedisError)
    assert.match(outcome.err.message, /OOM/)
    assert.ok(outcome.ms < 5000, `took ${outcome.ms} ms`)
    assert.equal(server.cli('EXISTS', 'lock:oom'), '0')

    const lock = await m.acquire('oom')
    assert.ok(lock, 'no lock after the memory limit was lifted')
    assert.equal(lock.acquiredOnAttempt, 1)
    assert.equal(await lock.release(), true)
  })
})

describe('close()', () => {
  let server
  before(async () => {
    server = await startRedis()
  })
  after(async () => {
    await server.stop()
  })

  test('a pending acquire rejects with ECLOSED promptly, and so does every later call', async () => {
    const holder = manager(server.url)
    const held = await holder.acquire('close-held')
    assert.ok(held)

    // A long retryDelay: close() must not wait for the next attempt.
    const m = manager(server.url, { maxRetries: -1, retryDelay: 5000 })
    const mine = await m.acquire('close-mine')
    assert.ok(mine)
    let settled = false
    const pending = timed(() => m.acquire('close-held')).finally(() => (settled = true))
    await sleep(200)
    assert.equal(settled, false, 'the acquire of a held lock did not wait')

    assert.equal(m.closed, false)
    const t0 = performance.now()
    const closing = m.close()
    assert.ok(closing instanceof Promise)
    assert.equal(await closing, undefined)
    assert.equal(m.closed, true)

    const outcome = await pending
    assertRejected(outcome, 'ECLOSED', ClosedError)
    const afterClose = performance.now() - t0
    assert.ok(afterClose < 1000, `the pending acquire ended ${afterClose} ms after close()`)

    assertRejected(await timed(() => m.acquire('close-later')), 'ECLOSED', ClosedError)
    assertRejected(await timed(() => mine.extend(10)), 'ECLOSED', ClosedError)
    assertRejected(await timed(() => mine.release()), 'ECLOSED', ClosedError)
    // A failed release can be tried again: still ECLOSED, never a silent `false`.
    assertRejected(await timed(() => mine.release()), 'ECLOSED', ClosedError)

    const cb = await acquireWithCallback(m, 'close-cb')
    assert.ok(cb.err instanceof ClosedError)
    assert.equal(cb.lock, undefined)

    // Locks still held are not released by close(): they expire after their ttl.
    assert.equal(server.cli('GET', mine.key), mine.id)
    // Nothing was ever granted to the closed manager's late calls.
    assert.equal(server.cli('EXISTS', 'lock:close-later'), '0')
    assert.equal(server.cli('GET', held.key), held.id)

    assert.equal(await held.release(), true)
    server.cli('DEL', mine.key)
  })

  test('close() ends the connection to Redis', async () => {
    const clients = () =>
      server
        .cli('CLIENT', 'LIST')
        .split('\n')
        .filter((line) => line !== '' && !line.includes('cmd=client')).length
    const before = clients()
    const m = manager(server.url)
    assert.equal(await (await m.acquire('conn')).release(), true)
    assert.equal(clients(), before + 1)
    await m.close()
    const t0 = performance.now()
    while (clients() !== before && performance.now() - t0 < 3000) await sleep(50)
    assert.equal(clients(), before, 'the connection is still open 3 s after close()')
  })

  test('close is idempotent; callback form close(cb)', async () => {
    const m = manager(server.url)
    await (await m.acquire('idem')).release()
    await m.close()
    await m.close()
    assert.doesNotThrow(() => m.close())
    assert.equal(m.closed, true)

    const result = await new Promise((resolve) => {
      const returned = m.close((...args) => resolve({ args, returned }))
      assert.equal(returned, undefined)
    })
    assert.equal(result.args[0], null)

    // A never-used manager closes too, and is closed from then on.
    const unused = manager(server.url)
    await new Promise((resolve, reject) => unused.close((err) => (err ? reject(err) : resolve())))
    assert.equal(unused.closed, true)
    assertRejected(await timed(() => unused.acquire('idem')), 'ECLOSED', ClosedError)
  })

  test('an acquire racing close() either gets its lock or leaves no key behind', async () => {
    const warm = manager(server.url)
    await (await warm.acquire('race-warm')).release()
    let granted = 0
    let closed = 0
    for (let i = 0; i < 40; i++) {
      const m = manager(server.url)
      if (i % 2) await (await m.acquire(`race-warm-${i}`)).release() // connection already open
      const name = `race-${i}`
      const pending = timed(() => m.acquire(name))
      if (i % 4 < 2) m.close()
      else setImmediate(() => m.close())
      const outcome = await pending
      if (outcome.err) {
        assertRejected(outcome, 'ECLOSED', ClosedError)
        closed++
        assert.equal(server.cli('EXISTS', `lock:${name}`), '0', `ECLOSED yet lock:${name} is held`)
      } else {
        granted++
        assert.equal(server.cli('GET', outcome.value.key), outcome.value.id)
        server.cli('DEL', outcome.value.key)
      }
    }
    assert.equal(granted + closed, 40)
  })
})
