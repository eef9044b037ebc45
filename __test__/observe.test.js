'use strict'

// Observability: the manager's events, stats(), and the DEBUG=dist-lock trace.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { once } = require('node:events')
const Redis = require('ioredis')
const { startRedis, freePort } = require('./helpers/redis-server.js')
const { managerPool, within, uniqueNames, sleep, spawnNode } = require('./helpers/util.js')
const { debugEnabled } = require('../lib/observe.js')
const { LockLostError, ConnectionError } = require('..')

describe('events, stats() and the trace', () => {
  let server
  let redis
  const managers = managerPool()
  const name = uniqueNames('observe')
  const children = new Set()

  before(async () => {
    server = await startRedis()
    redis = new Redis(server.port, '127.0.0.1')
  })

  after(async () => {
    for (const child of children) child.kill('SIGKILL')
    await managers.closeAll()
    redis?.disconnect()
    await server?.stop()
  })

  /** Records every event of `m` as [event, payload]. */
  function record(m) {
    const seen = []
    for (const event of ['acquired', 'notAcquired', 'released', 'extended', 'lost', 'error']) {
      m.on(event, (a, b) => seen.push([event, event === 'error' ? { error: a, ...b } : a]))
    }
    return seen
  }

  test('acquired, extended, released and notAcquired carry the resource, id, wait and attempts', async () => {
    const m = managers.open(server.url, { retryDelay: 20 })
    const seen = record(m)
    const resource = name('cycle')
    const lock = await m.acquire(resource)
    await lock.extend(10)
    assert.equal(await m.acquire(resource, { maxRetries: 0 }), false)
    assert.equal(await lock.release(), true)
    await sleep(20)
    const [acquired, extended, notAcquired, released] = seen
    assert.deepEqual(seen.map(([e]) => e), ['acquired', 'extended', 'notAcquired', 'released'])
    assert.deepEqual(
      { ...acquired[1], waitMs: 0 },
      { resource, key: lock.key, id: lock.id, waitMs: 0, attempts: 1, fencingToken: lock.fencingToken },
    )
    assert.equal(acquired[1].waitMs, lock.acquireDelay)
    assert.deepEqual(extended[1], { resource, key: lock.key, id: lock.id, ttl: 10_000, auto: false })
    assert.equal(notAcquired[1].resource, resource)
    assert.ok(notAcquired[1].waitMs >= 0)
    assert.equal(released[1].id, lock.id)
    assert.equal(released[1].released, true)
    assert.ok(released[1].heldMs >= 0)
    assert.equal(lock.resource, resource)
  })

  test('auto-extension emits extended (auto: true); a lost lock emits lost with a LockLostError', async () => {
    const m = managers.open(server.url)
    const seen = record(m)
    const lock = await m.acquire(name('auto'), { ttl: 300, autoExtend: true })
    await within(
      (async () => {
        while (!seen.some(([e, p]) => e === 'extended' && p.auto === true)) await sleep(20)
      })(),
      10_000,
      'an automatic extension',
    )
    const lostEvent = once(m, 'lost')
    await redis.del(lock.key)
    const [payload] = await within(lostEvent, 10_000, 'the lost event')
    assert.equal(payload.id, lock.id)
    assert.ok(payload.error instanceof LockLostError)
    assert.equal(m.stats().lost, 1)
    assert.ok(m.stats().autoExtended >= 1)
  })

  test('a failing call emits error with the operation and resource; without a listener nothing throws', async () => {
    const port = await freePort() // nothing listens there
    const quiet = managers.open(`redis://127.0.0.1:${port}`, { connectTimeout: 500, commandTimeout: 500 })
    // No 'error' listener: the caller gets the error, the process does not crash.
    await assert.rejects(within(quiet.acquire('x'), 15_000, 'refused'), ConnectionError)
    assert.equal(quiet.stats().redisErrors, 1)

    const m = managers.open(`redis://127.0.0.1:${port}`, { connectTimeout: 500, commandTimeout: 500 })
    const errors = []
    m.on('error', (err, context) => errors.push({ err, context }))
    await assert.rejects(within(m.acquire('y'), 15_000, 'refused'), ConnectionError)
    await assert.rejects(within(m.isLocked('z'), 15_000, 'refused'), ConnectionError)
    assert.deepEqual(errors.map(({ context }) => [context.op, context.resource]), [['acquire', 'y'], ['isLocked', 'z']])
    assert.ok(errors[0].err instanceof ConnectionError)
    assert.equal(errors[0].context.error, errors[0].err)
  })

  test('stats() counts grants, contended waits, timeouts, aborts and gives wait percentiles', async () => {
    const m = managers.open(server.url, { retryDelay: 20 })
    assert.deepEqual(m.stats().waitMs, { samples: 0, p50: null, p99: null, max: null })
    const resource = name('stats')
    const first = await m.acquire(resource)
    const waiter = m.acquire(resource)
    assert.equal(m.stats().pending, 1, 'the waiting acquire is in flight')
    await sleep(100)
    await first.release()
    const second = await within(waiter, 10_000, 'the waiter')
    assert.equal(await m.acquire(resource, { timeout: 50 }), false)
    const controller = new AbortController()
    const aborted = m.acquire(resource, { signal: controller.signal })
    setTimeout(() => controller.abort(), 30)
    await assert.rejects(aborted, { code: 'ABORT_ERR' })
    await second.release()
    const s = m.stats()
    assert.equal(s.acquired, 2)
    assert.equal(s.contended, second.acquiredOnAttempt > 1 ? 1 : 0)
    assert.equal(s.notAcquired, 1)
    assert.equal(s.aborted, 1)
    assert.equal(s.released, 2)
    assert.equal(s.lost, 0)
    assert.equal(s.redisErrors, 0)
    assert.equal(s.pending, 0)
    assert.equal(s.waitMs.samples, 2)
    assert.ok(s.waitMs.max >= 90, `the second grant waited for the release, max ${s.waitMs.max}`)
    assert.ok(s.waitMs.p50 <= s.waitMs.p99 && s.waitMs.p99 <= s.waitMs.max)
  })

  test('DEBUG=dist-lock prints a trace on stderr; without it nothing is printed', async () => {
    const script = `
      const m = require('.')(${JSON.stringify(server.url)})
      m.acquire('traced').then(async (lock) => { await lock.release(); await m.close() })
    `
    const traced = await spawnNode(['-e', script], { children, timeoutMs: 20_000, env: { DEBUG: 'other,dist-lock' } }).exited
    assert.equal(traced.code, 0, traced.stderr)
    assert.match(traced.stderr, /dist-lock acquired "traced" key=lock:traced id=[0-9a-f-]{36} waitMs=[\d.]+ attempts=1 fencingToken=\d+/)
    assert.match(traced.stderr, /dist-lock released "traced" .*released=true/)
    const silent = await spawnNode(['-e', script], { children, timeoutMs: 20_000, env: { DEBUG: '' } }).exited
    assert.equal(silent.code, 0, silent.stderr)
    assert.equal(silent.stderr, '')
  })

  test('the DEBUG switch follows the debug convention', () => {
    for (const on of ['dist-lock', '*', 'dist-*', 'a,dist-lock', 'a dist-lock']) assert.equal(debugEnabled(on), true, on)
    for (const off of [undefined, '', 'other', '*,-dist-lock', 'dist-lock,-dist-*', 'dist-lock:x']) {
      assert.equal(debugEnabled(off), false, String(off))
    }
  })
})
