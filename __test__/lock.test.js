'use strict'

// The Lock instance: owner-checked release() and extend(seconds), in the
// promise and the callback forms.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const Redis = require('ioredis')
const { startRedis } = require('./helpers/redis-server.js')
const { sleep, managerPool, execNode } = require('./helpers/util.js')
const { DistLockError, InvalidArgumentError, LockLostError } = require('..')

let server
let redis // an ioredis client, to look at Redis directly
const managers = managerPool()

function manager(options) {
  return managers.open(server.url, options)
}

/** Calls `fn(cb)` and resolves with the arguments of the (single) callback call. */
async function viaCallback(fn) {
  const calls = []
  let ret
  await new Promise((resolve) => {
    ret = fn((...args) => {
      calls.push(args)
      resolve()
    })
  })
  assert.equal(ret, undefined, 'the callback form returns undefined')
  await sleep(30) // a second call would show up here
  assert.equal(calls.length, 1, 'the callback is called exactly once')
  return calls[0]
}

function isLockLost(err) {
  assert.ok(err instanceof LockLostError, `expected LockLostError, got ${err}`)
  assert.ok(err instanceof DistLockError)
  assert.equal(err.code, 'ELOCKLOST')
  assert.equal(err.name, 'LockLostError')
  return true
}

function isInvalidSeconds(err) {
  assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${err}`)
  assert.ok(err instanceof DistLockError)
  assert.equal(err.code, 'EINVALIDARG')
  assert.match(err.message, /seconds/)
  return true
}

/** Polls until `check()` is truthy or `ms` passed. */
async function eventually(check, ms = 5000) {
  const deadline = Date.now() + ms
  for (;;) {
    if (await check()) return true
    if (Date.now() > deadline) return false
    await sleep(20)
  }
}

before(async () => {
  server = await startRedis()
  redis = new Redis({ port: server.port, host: '127.0.0.1' })
})

after(async () => {
  await managers.closeAll()
  redis.disconnect()
  await server.stop()
})

describe('release', () => {
  test('resolves true and deletes the key when it released', async () => {
    const dl = manager({ keyPrefix: 'rel:' })
    const lock = await dl.acquire('ok')
    assert.equal(await redis.get('rel:ok'), lock.id)
    assert.equal(await lock.release(), true)
    assert.equal(await redis.exists('rel:ok'), 0)
    // The resource can be locked again at once.
    const again = await dl.acquire('ok')
    assert.equal(again.acquiredOnAttempt, 1)
    await again.release()
  })

  test('resolves false when the lock had expired', async () => {
    const dl = manager({ keyPrefix: 'rel:', ttl: 100 })
    const lock = await dl.acquire('expired')
    await sleep(300)
    assert.equal(await redis.exists('rel:expired'), 0)
    assert.equal(await lock.release(), false)
  })

  test('resolves false when another owner took the lock, and leaves theirs alone', async () => {
    const first = manager({ keyPrefix: 'rel:', ttl: 100 })
    const second = manager({ keyPrefix: 'rel:', ttl: 10_000, maxRetries: 0 })
    const mine = await first.acquire('taken')
    await sleep(300)
    const theirs = await second.acquire('taken')
    assert.ok(theirs, 'the second manager got the expired lock')
    assert.notEqual(theirs.id, mine.id)
    assert.equal(await mine.release(), false)
    assert.equal(await redis.get('rel:taken'), theirs.id)
    const pttl = await redis.pttl('rel:taken')
    assert.ok(pttl > 5000 && pttl <= 10_000, `PTTL ${pttl}`)
    assert.equal(await theirs.release(), true)
  })

  test('a 1.0 process\'s key of the same name is not deleted by our release', async () => {
    const dl = manager({ keyPrefix: 'rel:', ttl: 100 })
    const lock = await dl.acquire('one-oh')
    await sleep(300)
    await redis.set('rel:one-oh', 'id-of-a-1.0-process', 'PX', 10_000, 'NX')
    assert.equal(await lock.release(), false)
    assert.equal(await redis.get('rel:one-oh'), 'id-of-a-1.0-process')
  })

  test('releasing twice: the second release resolves false', async () => {
    const dl = manager({ keyPrefix: 'rel:' })
    const lock = await dl.acquire('twice')
    assert.equal(await lock.release(), true)
    assert.equal(await lock.release(), false)
  })

  test('a second release does not delete a lock granted after the first', async () => {
    const dl = manager({ keyPrefix: 'rel:' })
    const lock = await dl.acquire('regrant')
    assert.equal(await lock.release(), true)
    const next = await dl.acquire('regrant')
    assert.equal(await lock.release(), false)
    assert.equal(await redis.get('rel:regrant'), next.id)
    await next.release()
  })

  test('two releases in a row without awaiting: one true, one false', async () => {
    const dl = manager({ keyPrefix: 'rel:' })
    const lock = await dl.acquire('both')
    const results = await Promise.all([lock.release(), lock.release()])
    assert.deepEqual(results.sort(), [false, true])
    assert.equal(await redis.exists('rel:both'), 0)
  })

  test('callback form: release(cb) gives (null, true), then (null, false)', async () => {
    const dl = manager({ keyPrefix: 'rel:' })
    const lock = await dl.acquire('cb')
    const [err, released] = await viaCallback((cb) => lock.release(cb))
    assert.equal(err, null)
    assert.equal(released, true)
    assert.equal(await redis.exists('rel:cb'), 0)
    const [err2, released2] = await viaCallback((cb) => lock.release(cb))
    assert.equal(err2, null)
    assert.equal(released2, false)
  })

  test('release without await or callback still releases', async () => {
    const dl = manager({ keyPrefix: 'rel:' })
    const lock = await dl.acquire('fire')
    lock.release() // fire and forget
    assert.ok(await eventually(async () => (await redis.exists('rel:fire')) === 0))
  })

  test('a failing release without await or callback does not crash the process', async () => {
    // In a child process: an unhandled rejection there would end it with
    // code 1 before it prints DONE.
    const indexPath = path.join(__dirname, '..', 'index.js')
    const script = `
      const createDistLock = require(${JSON.stringify(indexPath)})
      ;(async () => {
        const dl = createDistLock(${JSON.stringify(server.url)}, { keyPrefix: 'child:', ttl: 5000 })
        const a = await dl.acquire('a')
        const b = await dl.acquire('b')
        a.release()          // sent, then the manager closes under it
        await dl.close()
        b.release()          // the manager is closed: this one fails
        setTimeout(() => console.log('DONE'), 300)
      })()
    `
    const { stdout, stderr, code } = await execNode(['-e', script], 15_000)
    assert.equal(code, 0, stderr)
    assert.match(stdout, /^DONE$/m)
    assert.doesNotMatch(stderr, /Unhandled|ECLOSED/i)
  })

  test('a release that failed can be tried again (it is not counted as done)', async () => {
    const dl = manager({ keyPrefix: 'rel:' })
    const lock = await dl.acquire('retry')
    await dl.close()
    await assert.rejects(lock.release(), (err) => err instanceof DistLockError && err.code === 'ECLOSED')
    // Not marked released: a second try goes to the (closed) manager again
    // rather than resolving a false "not ours".
    await assert.rejects(lock.release(), (err) => err.code === 'ECLOSED')
    assert.equal(await redis.get('rel:retry'), lock.id)
    await redis.del('rel:retry')
  })
})

describe('extend', () => {
  test('extend(seconds) resets the TTL to that many seconds', async () => {
    const dl = manager({ keyPrefix: 'ext:', ttl: 1000 })
    const lock = await dl.acquire('reset')
    assert.ok((await redis.pttl('ext:reset')) <= 1000)
    // true, as 1.0's truthy result (code written for 1.0 may check it).
    const result = await lock.extend(10)
    assert.equal(result, true)
    const pttl = await redis.pttl('ext:reset')
    assert.ok(pttl > 5000 && pttl <= 10_000, `PTTL ${pttl}`)
    assert.equal(await redis.get('ext:reset'), lock.id)
    // It also outlives its original ttl.
    await sleep(1200)
    assert.equal(await redis.get('ext:reset'), lock.id)
    assert.equal(await lock.release(), true)
  })

  test('extend can shorten the TTL too (reset, not add)', async () => {
    const dl = manager({ keyPrefix: 'ext:', ttl: 60_000 })
    const lock = await dl.acquire('shorten')
    await lock.extend(2)
    const pttl = await redis.pttl('ext:shorten')
    assert.ok(pttl > 0 && pttl <= 2000, `PTTL ${pttl}`)
    await lock.release()
  })

  test('fractional seconds are kept to the millisecond: extend(0.5)', async () => {
    const dl = manager({ keyPrefix: 'ext:', ttl: 30_000 })
    const lock = await dl.acquire('half')
    await lock.extend(0.5)
    const pttl = await redis.pttl('ext:half')
    assert.ok(pttl > 0 && pttl <= 500, `PTTL ${pttl}`)
    await sleep(700)
    assert.equal(await redis.exists('ext:half'), 0)
    assert.equal(await lock.release(), false)
  })

  test('extend of an expired lock rejects with LockLostError and does not recreate the key', async () => {
    const dl = manager({ keyPrefix: 'ext:', ttl: 100 })
    const lock = await dl.acquire('expired')
    await sleep(300)
    await assert.rejects(lock.extend(10), isLockLost)
    assert.equal(await redis.exists('ext:expired'), 0)
  })

  test('extend of a lock now owned by someone else rejects, their TTL untouched', async () => {
    const first = manager({ keyPrefix: 'ext:', ttl: 100 })
    const second = manager({ keyPrefix: 'ext:', ttl: 20_000, maxRetries: 0 })
    const mine = await first.acquire('taken')
    await sleep(300)
    const theirs = await second.acquire('taken')
    assert.ok(theirs)
    await assert.rejects(mine.extend(100), isLockLost)
    assert.equal(await redis.get('ext:taken'), theirs.id)
    const pttl = await redis.pttl('ext:taken')
    assert.ok(pttl > 10_000 && pttl <= 20_000, `PTTL ${pttl}`)
    await theirs.release()
  })

  test('extend after release rejects with LockLostError and creates nothing', async () => {
    const dl = manager({ keyPrefix: 'ext:' })
    const lock = await dl.acquire('released')
    await lock.release()
    await assert.rejects(lock.extend(10), isLockLost)
    assert.equal(await redis.exists('ext:released'), 0)
  })

  test('extend after release does not touch a lock granted since', async () => {
    const dl = manager({ keyPrefix: 'ext:', ttl: 20_000 })
    const lock = await dl.acquire('regrant')
    await lock.release()
    const next = await dl.acquire('regrant')
    await assert.rejects(lock.extend(100), isLockLost)
    const pttl = await redis.pttl('ext:regrant')
    assert.ok(pttl > 10_000 && pttl <= 20_000, `PTTL ${pttl}`)
    await next.release()
  })

  const badSeconds = {
    0: 0,
    '-1': -1,
    NaN: NaN,
    Infinity: Infinity,
    "'10' (a string)": '10',
    undefined: undefined,
    '0.0001 (under 1 ms)': 0.0001,
    null: null,
  }
  for (const [label, seconds] of Object.entries(badSeconds)) {
    test(`extend(${label}) rejects with EINVALIDARG and leaves the lock alone`, async () => {
      const dl = manager({ keyPrefix: 'extbad:', ttl: 5000 })
      const name = `s${label.replace(/\W/g, '_')}`
      const lock = await dl.acquire(name)
      await assert.rejects(lock.extend(seconds), isInvalidSeconds)
      assert.equal(await redis.get(`extbad:${name}`), lock.id)
      const pttl = await redis.pttl(`extbad:${name}`)
      assert.ok(pttl > 3000 && pttl <= 5000, `PTTL ${pttl}`)
      // Still ours: a valid extend and the release work.
      await lock.extend(6)
      assert.equal(await lock.release(), true)
    })
  }

  test('bad seconds also reach the callback as EINVALIDARG', async () => {
    const dl = manager({ keyPrefix: 'extbad:', ttl: 5000 })
    const lock = await dl.acquire('cb')
    const [err] = await viaCallback((cb) => lock.extend(-1, cb))
    isInvalidSeconds(err)
    assert.ok((await redis.pttl('extbad:cb')) <= 5000)
    await lock.release()
  })

  test('callback form: extend(seconds, cb) gives (null, true) and resets the TTL', async () => {
    const dl = manager({ keyPrefix: 'ext:', ttl: 1000 })
    const lock = await dl.acquire('cb')
    const [err, value] = await viaCallback((cb) => lock.extend(10, cb))
    assert.equal(err, null)
    assert.equal(value, true) // 1.0 called back a truthy 1
    const pttl = await redis.pttl('ext:cb')
    assert.ok(pttl > 5000 && pttl <= 10_000, `PTTL ${pttl}`)
    await lock.release()
  })

  test('callback form: extend of an expired lock gives a LockLostError', async () => {
    const dl = manager({ keyPrefix: 'ext:', ttl: 100 })
    const lock = await dl.acquire('cblost')
    await sleep(300)
    const [err] = await viaCallback((cb) => lock.extend(10, cb))
    isLockLost(err)
    assert.equal(await redis.exists('ext:cblost'), 0)
  })
})
