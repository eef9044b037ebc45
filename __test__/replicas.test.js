'use strict'

// waitReplicas: after a grant, WAIT for replicas to acknowledge it; if too few
// do, release the lock and fail with NotReplicatedError.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const distLock = require('..')
const { NotReplicatedError, InvalidArgumentError, DistLockError } = distLock
const { startRedis } = require('./helpers/redis-server.js')
const { sleep, managerPool, uniqueNames } = require('./helpers/util.js')

let primary
let replica
let lonely // a primary without any replica
const managers = managerPool()

before(async () => {
  // No 5 s diskless-sync delay before the replica's first full sync.
  primary = await startRedis({ args: ['--repl-diskless-sync-delay', '0'] })
  replica = await startRedis({ args: ['--replicaof', '127.0.0.1', String(primary.port)] })
  lonely = await startRedis()
  const deadline = Date.now() + 15_000
  for (;;) {
    const p = primary.cli('INFO', 'replication')
    const r = replica.cli('INFO', 'replication')
    if (/connected_slaves:1\b/.test(p) && /master_link_status:up\b/.test(r)) break
    if (Date.now() > deadline) throw new Error(`replication not up after 15 s:\n${p}\n${r}`)
    await sleep(50)
  }
})

after(async () => {
  managers.closeAll()
  for (const s of [replica, primary, lonely]) if (s) await s.stop()
})

function manager(url, options) {
  return managers.open(url, options)
}

const uniqueName = uniqueNames('repl')

/** Waits until the replica has applied everything the primary did so far. */
async function replicaCaughtUp() {
  const deadline = Date.now() + 5_000
  for (;;) {
    const offset = /master_repl_offset:(\d+)/.exec(primary.cli('INFO', 'replication'))[1]
    const applied = /slave_repl_offset:(\d+)/.exec(replica.cli('INFO', 'replication'))[1]
    if (Number(applied) >= Number(offset)) return
    if (Date.now() > deadline) throw new Error('the replica did not catch up')
    await sleep(20)
  }
}

function isNotReplicated(err) {
  assert.ok(err instanceof NotReplicatedError, `expected NotReplicatedError, got ${err && err.stack}`)
  assert.ok(err instanceof DistLockError)
  assert.equal(err.code, 'ENOTREPLICATED')
  return true
}

describe('with one replica', () => {
  test('waitReplicas { count: 1 } grants; the key is on the replica too', async () => {
    const m = manager(primary.url, { waitReplicas: { count: 1, timeoutMs: 1_000 } })
    assert.deepEqual(m.options.waitReplicas, { count: 1, timeoutMs: 1_000 })
    const name = uniqueName('ok')
    const lock = await m.acquire(name)
    assert.ok(lock, 'no lock')
    // WAIT returned: the replica already has the grant (no polling needed).
    assert.equal(replica.cli('GET', `lock:${name}`), lock.id)
    // And the counter's increment, and the token kept beside the lock.
    assert.equal(replica.cli('GET', '{lock:}:fencing'), String(lock.fencingToken))
    assert.equal(replica.cli('GET', `{lock:}:token:lock:${name}`), String(lock.fencingToken))
    assert.equal(await lock.release(), true)
    await replicaCaughtUp()
    assert.equal(replica.cli('EXISTS', `lock:${name}`), '0')
  })

  test('count 2 with only one replica: rejects ENOTREPLICATED, leaves no lock key', async () => {
    const m = manager(primary.url, { waitReplicas: { count: 2, timeoutMs: 200 } })
    const name = uniqueName('two')
    const t0 = performance.now()
    await assert.rejects(m.acquire(name), (err) => {
      isNotReplicated(err)
      assert.match(err.message, /1 of the 2/)
      return true
    })
    const ms = performance.now() - t0
    assert.ok(ms >= 150, `rejected after ${ms} ms, before the WAIT timeout`)
    assert.ok(ms < 3_000, `rejected only after ${ms} ms`)
    assert.equal(primary.cli('EXISTS', `lock:${name}`), '0')
    await replicaCaughtUp()
    assert.equal(replica.cli('EXISTS', `lock:${name}`), '0')
    // The lock is free: the next acquire gets it at once.
    const plain = manager(primary.url)
    const lock = await plain.acquire(name, { maxRetries: 0 })
    assert.ok(lock)
    await lock.release()
  })

  test('callback form gets the NotReplicatedError', async () => {
    const m = manager(primary.url, { waitReplicas: { count: 2, timeoutMs: 100 } })
    const [err, lock] = await new Promise((resolve) => m.acquire(uniqueName('cb'), (e, l) => resolve([e, l])))
    isNotReplicated(err)
    assert.equal(lock, undefined)
  })

  test('per-call waitReplicas overrides the manager\'s (both ways)', async () => {
    const plain = manager(primary.url)
    const strict = manager(primary.url, { waitReplicas: { count: 2, timeoutMs: 100 } })
    const a = uniqueName('percall')
    await assert.rejects(plain.acquire(a, { waitReplicas: { count: 2, timeoutMs: 100 } }), isNotReplicated)
    assert.equal(primary.cli('EXISTS', `lock:${a}`), '0')
    const lock = await plain.acquire(a, { waitReplicas: { count: 1, timeoutMs: 1_000 } })
    assert.ok(lock)
    assert.equal(replica.cli('GET', `lock:${a}`), lock.id)
    await lock.release()
    const b = uniqueName('percall')
    const relaxed = await strict.acquire(b, { waitReplicas: { count: 1, timeoutMs: 1_000 } })
    assert.ok(relaxed, 'the per-call waitReplicas did not override the manager\'s')
    await relaxed.release()
    // A per-call option does not stick to the manager.
    assert.deepEqual(plain.options.waitReplicas, undefined)
    await assert.rejects(strict.acquire(uniqueName('percall')), isNotReplicated)
  })

  test('using() with waitReplicas: fn not called when not replicated', async () => {
    const m = manager(primary.url)
    const name = uniqueName('using')
    await assert.rejects(
      m.using(name, { waitReplicas: { count: 2, timeoutMs: 100 } }, () => assert.fail('fn called')),
      isNotReplicated,
    )
    assert.equal(primary.cli('EXISTS', `lock:${name}`), '0')
    const result = await m.using(name, { waitReplicas: { count: 1, timeoutMs: 1_000 } }, (lock) => {
      assert.equal(replica.cli('GET', lock.key), lock.id)
      return 'replicated'
    })
    assert.equal(result, 'replicated')
  })

  test('a not-replicated grant does not leave a lock that blocks others', async () => {
    const strict = manager(primary.url, { waitReplicas: { count: 2, timeoutMs: 100 } })
    const other = manager(primary.url)
    const name = uniqueName('noblock')
    await assert.rejects(strict.acquire(name), isNotReplicated)
    assert.equal(await other.isLocked(name), false)
    assert.notEqual(await other.acquire(name, { maxRetries: 0 }), false)
  })

  test('the fencing counter still moves on a not-replicated grant: tokens never repeat', async () => {
    const strict = manager(primary.url, { waitReplicas: { count: 2, timeoutMs: 100 } })
    const plain = manager(primary.url)
    const name = uniqueName('fence')
    const a = await plain.acquire(name)
    await a.release()
    await assert.rejects(strict.acquire(name), isNotReplicated)
    const b = await plain.acquire(name)
    assert.ok(b.fencingToken > a.fencingToken)
    await b.release()
  })
})

describe('with no replica', () => {
  test('{ count: 1, timeoutMs: 100 } rejects ENOTREPLICATED and leaves no key', async () => {
    const m = manager(lonely.url, { waitReplicas: { count: 1, timeoutMs: 100 } })
    const name = uniqueName('none')
    await assert.rejects(m.acquire(name), (err) => {
      isNotReplicated(err)
      assert.match(err.message, /0 of the 1/)
      return true
    })
    assert.equal(lonely.cli('EXISTS', `lock:${name}`), '0')
  })

  test('per call, on a manager without waitReplicas', async () => {
    const m = manager(lonely.url)
    const name = uniqueName('none-percall')
    await assert.rejects(m.acquire(name, { waitReplicas: { count: 1, timeoutMs: 100 } }), isNotReplicated)
    assert.equal(lonely.cli('EXISTS', `lock:${name}`), '0')
    // Without it, the same manager grants.
    const lock = await m.acquire(name)
    assert.ok(lock)
    await lock.release()
  })

  test('concurrent acquires with waitReplicas all reject; none leaves a key', async () => {
    const m = manager(lonely.url, { waitReplicas: { count: 1, timeoutMs: 100 } })
    const names = Array.from({ length: 5 }, () => uniqueName('none-many'))
    const results = await Promise.allSettled(names.map((n) => m.acquire(n)))
    for (const r of results) {
      assert.equal(r.status, 'rejected')
      isNotReplicated(r.reason)
    }
    for (const n of names) assert.equal(lonely.cli('EXISTS', `lock:${n}`), '0')
  })
})

describe('invalid waitReplicas', () => {
  const cases = [
    ['count 0', { count: 0, timeoutMs: 100 }, /waitReplicas\.count/],
    ['count -1', { count: -1, timeoutMs: 100 }, /waitReplicas\.count/],
    ['count 1.5', { count: 1.5, timeoutMs: 100 }, /waitReplicas\.count/],
    ['count NaN', { count: NaN, timeoutMs: 100 }, /waitReplicas\.count/],
    ['count as a string', { count: '1', timeoutMs: 100 }, /count/],
    ['timeoutMs 0', { count: 1, timeoutMs: 0 }, /waitReplicas\.timeoutMs/],
    ['timeoutMs -5', { count: 1, timeoutMs: -5 }, /waitReplicas\.timeoutMs/],
    ['timeoutMs Infinity', { count: 1, timeoutMs: Infinity }, /waitReplicas\.timeoutMs/],
    ['missing timeoutMs', { count: 1 }, /timeoutMs/],
    ['missing count', { timeoutMs: 100 }, /count/],
    ['an unknown key', { count: 1, timeoutMs: 100, timeout: 5 }, /timeout/],
    ['a number', 1, /waitReplicas/],
    ['an array', [1, 100], /waitReplicas/],
    ['null', null, /waitReplicas/],
  ]

  function isInvalidArg(pattern) {
    return (err) => {
      assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${err && err.stack}`)
      assert.equal(err.code, 'EINVALIDARG')
      assert.match(err.message, pattern)
      return true
    }
  }

  for (const [label, value, pattern] of cases) {
    test(`${label}: refused at construction with EINVALIDARG naming it`, () => {
      assert.throws(() => distLock(lonely.url, { waitReplicas: value }), isInvalidArg(pattern))
    })
  }

  for (const [label, value, pattern] of cases) {
    test(`${label}: refused per call with EINVALIDARG, no key written`, async () => {
      const m = manager(lonely.url)
      const name = uniqueName('bad')
      await assert.rejects(m.acquire(name, { waitReplicas: value }), isInvalidArg(pattern))
      assert.equal(lonely.cli('EXISTS', `lock:${name}`), '0')
    })
  }

  test('keyPrefix per call is refused with EINVALIDARG', async () => {
    const m = manager(lonely.url)
    await assert.rejects(m.acquire(uniqueName('prefix'), { keyPrefix: 'x:' }), { code: 'EINVALIDARG', message: /keyPrefix/ })
  })

  test('an unknown per-call option is refused with EINVALIDARG naming it', async () => {
    const m = manager(lonely.url)
    await assert.rejects(m.acquire(uniqueName('unknown'), { waitReplica: { count: 1, timeoutMs: 5 } }), {
      code: 'EINVALIDARG',
      message: /waitReplica\b/,
    })
    await assert.rejects(m.acquire(uniqueName('unknown'), { tll: 5 }), { code: 'EINVALIDARG', message: /tll/ })
  })

  test('per-call options ttl, retryDelay, maxRetries, autoExtend are accepted', async () => {
    const m = manager(lonely.url)
    const lock = await m.acquire(uniqueName('ok'), { ttl: 2_000, retryDelay: 5, maxRetries: 0, autoExtend: false })
    assert.ok(lock)
    const pttl = Number(lonely.cli('PTTL', lock.key))
    assert.ok(pttl > 1_000 && pttl <= 2_000)
    await lock.release()
  })
})
