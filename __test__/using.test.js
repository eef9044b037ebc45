'use strict'

// Scoped use (`distLock.using`), async dispose, and inspection
// (`distLock.isLocked`, `lock.isHeld`).

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const distLock = require('..')
const { NotAcquiredError, InvalidArgumentError, LockLostError, DistLockError } = distLock
const { startRedis } = require('./helpers/redis-server.js')
const { sleep, managerPool, uniqueNames } = require('./helpers/util.js')

let server
const managers = managerPool()
let unhandled = 0
const onUnhandled = () => {
  unhandled += 1
}

before(async () => {
  process.on('unhandledRejection', onUnhandled)
  server = await startRedis()
})

after(async () => {
  managers.closeAll()
  await server.stop()
  process.off('unhandledRejection', onUnhandled)
})

function manager(options) {
  return managers.open(server.url, options)
}

const uniqueName = uniqueNames('using')

function isInvalidArg(pattern) {
  return (err) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${err && err.stack}`)
    assert.ok(err instanceof TypeError)
    assert.equal(err.code, 'EINVALIDARG')
    if (pattern) assert.match(err.message, pattern)
    return true
  }
}

/** Resolves the callback's (err, value) as [err, value, calls]. */
function viaCallback(start) {
  return new Promise((resolve) => {
    let calls = 0
    start((err, value) => {
      calls += 1
      setTimeout(() => resolve([err, value, calls]), 20)
    })
  })
}

describe('using(name, [options], fn)', () => {
  test('returns what fn returns and releases the lock', async () => {
    const m = manager()
    const name = uniqueName('value')
    let seen
    const result = await m.using(name, async (lock) => {
      seen = lock
      assert.equal(server.cli('GET', `lock:${name}`), lock.id)
      assert.equal(await m.isLocked(name), true)
      return { answer: 42 }
    })
    assert.deepEqual(result, { answer: 42 })
    assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
    assert.equal(seen.released, true)
    assert.equal(seen.isValid(), false)
  })

  test('a synchronous fn: its return value is passed through', async () => {
    const m = manager()
    const name = uniqueName('sync')
    assert.equal(await m.using(name, () => 'sync result'), 'sync result')
    assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
  })

  test('when fn rejects, using rejects with the same error and releases', async () => {
    const m = manager()
    const name = uniqueName('throws')
    const boom = new Error('boom')
    await assert.rejects(
      m.using(name, async () => {
        await sleep(10)
        throw boom
      }),
      (err) => err === boom,
    )
    assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
    // The lock is free for the next caller at once.
    const lock = await m.acquire(name, { maxRetries: 0 })
    assert.ok(lock)
    await lock.release()
  })

  test('when fn throws synchronously, using rejects with that error and releases', async () => {
    const m = manager()
    const name = uniqueName('throws-sync')
    const boom = new RangeError('sync boom')
    await assert.rejects(
      m.using(name, () => {
        throw boom
      }),
      (err) => err === boom,
    )
    assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
  })

  test('maxRetries 0 on a held key: rejects NotAcquiredError (ENOTACQUIRED), fn not called', async () => {
    const m = manager()
    const name = uniqueName('held')
    const holder = await m.acquire(name)
    let called = false
    await assert.rejects(
      m.using(name, { maxRetries: 0 }, () => {
        called = true
      }),
      (err) => {
        assert.ok(err instanceof NotAcquiredError, `got ${err && err.stack}`)
        assert.ok(err instanceof DistLockError)
        assert.equal(err.code, 'ENOTACQUIRED')
        assert.match(err.message, new RegExp(name))
        return true
      },
    )
    assert.equal(called, false)
    // The holder's lock is untouched.
    assert.equal(server.cli('GET', `lock:${name}`), holder.id)
    assert.equal(await holder.isHeld(), true)
    await holder.release()
  })

  test('maxRetries 2 waits retryDelay between attempts, then rejects ENOTACQUIRED', async () => {
    const m = manager()
    const name = uniqueName('held-retries')
    const holder = await m.acquire(name)
    const t0 = performance.now()
    await assert.rejects(
      m.using(name, { maxRetries: 2, retryDelay: 100 }, () => assert.fail('fn called')),
      { code: 'ENOTACQUIRED' },
    )
    assert.ok(performance.now() - t0 >= 190, 'did not wait between the attempts')
    await holder.release()
  })

  test('with unlimited retries, using waits for the lock and then runs fn', async () => {
    const m = manager()
    const name = uniqueName('wait')
    const holder = await m.acquire(name)
    let ran = false
    const pending = m.using(name, { retryDelay: 10 }, () => {
      ran = true
      return 'ran'
    })
    await sleep(100)
    assert.equal(ran, false, 'fn ran while another holder had the lock')
    await holder.release()
    assert.equal(await pending, 'ran')
  })

  test('fn receives an auto-extended lock with a signal', async () => {
    const m = manager({ ttl: 5_000 })
    const name = uniqueName('lock-arg')
    await m.using(name, async (lock) => {
      assert.ok(lock instanceof distLock.Lock)
      assert.equal(lock.autoExtend, true)
      assert.ok(lock.signal instanceof AbortSignal)
      assert.equal(lock.signal.aborted, false)
      assert.equal(lock.key, `lock:${name}`)
      assert.ok(Number.isSafeInteger(lock.fencingToken) && lock.fencingToken > 0)
      assert.equal(lock.isValid(), true)
      assert.equal(await lock.isHeld(), true)
    })
  })

  test('fn running for 3 x ttl (ttl 300) keeps the lock; others get false meanwhile', async () => {
    const m = manager({ ttl: 300 })
    const other = manager()
    const name = uniqueName('long')
    let refusals = 0
    const result = await m.using(name, async (lock) => {
      const start = performance.now()
      while (performance.now() - start < 1_000) {
        assert.equal(await other.acquire(name, { maxRetries: 0 }), false)
        assert.equal(await lock.isHeld(), true)
        refusals += 1
        await sleep(100)
      }
      assert.equal(lock.lost, false)
      assert.equal(lock.signal.aborted, false)
      return 'done'
    })
    assert.equal(result, 'done')
    assert.ok(refusals >= 5)
    assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
  })

  test('options are applied: ttl per call', async () => {
    const m = manager()
    const name = uniqueName('ttl')
    await m.using(name, { ttl: 4_000 }, async (lock) => {
      const pttl = Number(server.cli('PTTL', lock.key))
      assert.ok(pttl > 3_000 && pttl <= 4_000, `PTTL ${pttl}`)
    })
  })

  test('options.autoExtend false is honoured', async () => {
    const m = manager()
    await m.using(uniqueName('no-ae'), { autoExtend: false }, (lock) => {
      assert.equal(lock.autoExtend, false)
    })
  })

  test('losing the lock during fn aborts lock.signal; using returns what fn returns', async () => {
    const m = manager()
    const name = uniqueName('lost')
    const result = await m.using(name, { ttl: 300 }, async (lock) => {
      server.cli('DEL', lock.key)
      const reason = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('signal not aborted within 2 s')), 2_000)
        lock.signal.addEventListener('abort', () => {
          clearTimeout(timer)
          resolve(lock.signal.reason)
        })
      })
      assert.ok(reason instanceof LockLostError)
      assert.equal(lock.lost, true)
      return 'noticed'
    })
    assert.equal(result, 'noticed')
  })

  test('a release that fails after fn does not replace fn\'s outcome', async () => {
    const own = await startRedis()
    const m = distLock(own.url, { connectTimeout: 300, commandTimeout: 500 })
    try {
      const result = await m.using(uniqueName('release-fails'), { ttl: 5_000 }, async () => {
        await own.stop()
        return 'fn result'
      })
      assert.equal(result, 'fn result')
    } finally {
      m.close()
      await own.stop()
    }
  })

  test('using(name, fn) and using(name, options, fn) forms; options may be undefined', async () => {
    const m = manager()
    assert.equal(await m.using(uniqueName('form2'), () => 2), 2)
    assert.equal(await m.using(uniqueName('form3'), { ttl: 1_000 }, () => 3), 3)
    assert.equal(await m.using(uniqueName('form3u'), undefined, () => 4), 4)
  })

  test('fn not a function: rejects EINVALIDARG naming "fn", no lock taken', async () => {
    const m = manager()
    const name = uniqueName('nofn')
    for (const bad of [undefined, null, 42, 'fn', {}, Promise.resolve()]) {
      await assert.rejects(m.using(name, bad), isInvalidArg(/"fn"/))
      await assert.rejects(m.using(name, {}, bad), isInvalidArg(/"fn"/))
    }
    await assert.rejects(m.using(name), isInvalidArg(/"fn"/))
    assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
  })

  test('bad names and options: rejects EINVALIDARG, fn not called', async () => {
    const m = manager()
    const fn = () => assert.fail('fn called')
    await assert.rejects(m.using('', fn), isInvalidArg(/resourceName/))
    await assert.rejects(m.using(42, fn), isInvalidArg(/resourceName/))
    await assert.rejects(m.using(uniqueName('opts'), { tll: 5 }, fn), isInvalidArg(/tll/))
    await assert.rejects(m.using(uniqueName('opts'), { keyPrefix: 'x:' }, fn), isInvalidArg(/keyPrefix/))
    await assert.rejects(m.using(uniqueName('opts'), { ttl: 0 }, fn), isInvalidArg(/ttl/))
    await assert.rejects(m.using(uniqueName('opts'), 'options', fn), isInvalidArg(/options/))
  })

  test('a closed manager: rejects ECLOSED, fn not called', async () => {
    const m = distLock(server.url)
    m.close()
    await assert.rejects(m.using(uniqueName('closed'), () => assert.fail('fn called')), { code: 'ECLOSED' })
  })
})

describe('lock[Symbol.asyncDispose]', () => {
  test('releases the lock', async () => {
    const m = manager()
    const name = uniqueName('dispose')
    const lock = await m.acquire(name)
    assert.equal(typeof lock[Symbol.asyncDispose], 'function')
    assert.equal(await lock[Symbol.asyncDispose](), undefined)
    assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
    assert.equal(lock.released, true)
    // Disposing again is harmless and does not touch a later holder.
    const next = await m.acquire(name)
    await lock[Symbol.asyncDispose]()
    assert.equal(server.cli('GET', `lock:${name}`), next.id)
    await next.release()
  })

  test('stops auto-extension: no "lost" afterwards', async () => {
    const m = manager()
    const lock = await m.acquire(uniqueName('dispose-ae'), { ttl: 300, autoExtend: true })
    let lost = 0
    lock.on('lost', () => lost++)
    await lock[Symbol.asyncDispose]()
    await sleep(500)
    assert.equal(lost, 0)
    assert.equal(server.cli('EXISTS', lock.key), '0')
  })
})

describe('isLocked(name[, cb])', () => {
  test('true while held (by us or a 1.0-style SET), false after', async () => {
    const m = manager()
    const other = manager()
    const name = uniqueName('locked')
    assert.equal(await m.isLocked(name), false)
    const lock = await m.acquire(name)
    assert.equal(await m.isLocked(name), true)
    assert.equal(await other.isLocked(name), true, 'another manager does not see it')
    await lock.release()
    assert.equal(await m.isLocked(name), false)
    server.cli('SET', `lock:${name}`, 'old-id', 'PX', '10000')
    assert.equal(await m.isLocked(name), true)
    server.cli('DEL', `lock:${name}`)
    assert.equal(await m.isLocked(name), false)
  })

  test('false once the lock expired', async () => {
    const m = manager()
    const name = uniqueName('expired')
    await m.acquire(name, { ttl: 100 })
    await sleep(250)
    assert.equal(await m.isLocked(name), false)
  })

  test('uses the manager\'s keyPrefix', async () => {
    const a = manager({ keyPrefix: 'pa:' })
    const b = manager({ keyPrefix: 'pb:' })
    const name = uniqueName('prefix')
    const lock = await a.acquire(name)
    assert.equal(await a.isLocked(name), true)
    assert.equal(await b.isLocked(name), false)
    await lock.release()
  })

  test('does not touch the lock or its counter', async () => {
    const m = manager()
    const name = uniqueName('readonly')
    const lock = await m.acquire(name, { ttl: 10_000 })
    const fence = server.cli('GET', '{lock:}:fencing')
    assert.equal(await m.isLocked(name), true)
    assert.equal(server.cli('GET', `lock:${name}`), lock.id)
    assert.equal(server.cli('GET', '{lock:}:fencing'), fence)
    await lock.release()
  })

  test('callback form: (null, true) while held, (null, false) after; returns undefined', async () => {
    const m = manager()
    const name = uniqueName('cb')
    const lock = await m.acquire(name)
    let ret
    const [err, value, calls] = await viaCallback((cb) => {
      ret = m.isLocked(name, cb)
    })
    assert.equal(ret, undefined)
    assert.equal(err, null)
    assert.equal(value, true)
    assert.equal(calls, 1)
    await lock.release()
    const [err2, value2] = await viaCallback((cb) => m.isLocked(name, cb))
    assert.equal(err2, null)
    assert.equal(value2, false)
  })

  for (const [label, bad] of [
    ['an empty string', ''],
    ['undefined', undefined],
    ['null', null],
    ['a number', 42],
    ['an object', { name: 'x' }],
    ['a lone surrogate', 'a\uD800b'],
  ]) {
    test(`${label} as name: rejects EINVALIDARG (promise and callback form)`, async () => {
      const m = manager()
      await assert.rejects(m.isLocked(bad), isInvalidArg(/resourceName/))
      const [err, value, calls] = await viaCallback((cb) => m.isLocked(bad, cb))
      isInvalidArg(/resourceName/)(err)
      assert.equal(value, undefined)
      assert.equal(calls, 1)
    })
  }

  test('a callback that is not a function throws EINVALIDARG', () => {
    const m = manager()
    assert.throws(() => m.isLocked('x', 'not a function'), isInvalidArg(/callback/))
  })

  test('a closed manager rejects ECLOSED', async () => {
    const m = distLock(server.url)
    m.close()
    await assert.rejects(m.isLocked('x'), { code: 'ECLOSED' })
  })
})

describe('lock.isHeld([cb])', () => {
  test('true while held; false after another owner replaced the key; false after release', async () => {
    const m = manager()
    const name = uniqueName('held')
    const lock = await m.acquire(name, { ttl: 10_000 })
    assert.equal(await lock.isHeld(), true)
    server.cli('SET', `lock:${name}`, 'someone-else', 'PX', '10000')
    assert.equal(await lock.isHeld(), false)
    assert.equal(server.cli('GET', `lock:${name}`), 'someone-else', 'isHeld changed the key')
    server.cli('DEL', `lock:${name}`)

    const lock2 = await m.acquire(name)
    await lock2.release()
    assert.equal(await lock2.isHeld(), false)
  })

  test('false once expired, and another lock of the same name does not count', async () => {
    const m = manager()
    const name = uniqueName('held-expired')
    const first = await m.acquire(name, { ttl: 100 })
    await sleep(200)
    assert.equal(await first.isHeld(), false)
    const second = await m.acquire(name)
    assert.equal(await first.isHeld(), false)
    assert.equal(await second.isHeld(), true)
    await second.release()
  })

  test('callback form: (null, true) then (null, false); returns undefined', async () => {
    const m = manager()
    const lock = await m.acquire(uniqueName('held-cb'))
    let ret
    const [err, value, calls] = await viaCallback((cb) => {
      ret = lock.isHeld(cb)
    })
    assert.equal(ret, undefined)
    assert.deepEqual([err, value, calls], [null, true, 1])
    await lock.release()
    const [err2, value2] = await viaCallback((cb) => lock.isHeld(cb))
    assert.deepEqual([err2, value2], [null, false])
  })
})

test('no unhandled rejection in this file', () => {
  assert.equal(unhandled, 0)
})
