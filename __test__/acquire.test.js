'use strict'

// acquire(): the promise and callback forms, the fields of a granted lock,
// maxRetries, the on-Redis format of 1.0 (and interop with 1.0 processes),
// resource names and their validation.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const Redis = require('ioredis')
const { startRedis } = require('./helpers/redis-server.js')
const { sleep, managerPool, within, execNode, commandCalls } = require('./helpers/util.js')
const createDistLock = require('..')
const { DistLockError, InvalidArgumentError } = require('..')

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const MAX_KEY_BYTES = 64 * 1024

let server
let redis // an ioredis client, to look at Redis directly
const managers = managerPool()

/** A lock manager on the test server; closed in `after`. */
function manager(options) {
  return managers.open(server.url, options)
}

/** Number of SET commands Redis executed since the last CONFIG RESETSTAT. */
async function setCalls() {
  return commandCalls(await redis.info('commandstats')).set ?? 0
}

function assertInvalidArg(err, name) {
  assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${err}`)
  assert.ok(err instanceof TypeError)
  assert.ok(err instanceof DistLockError)
  assert.equal(err.code, 'EINVALIDARG')
  assert.match(err.message, new RegExp(name))
  return true
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

describe('promise and callback forms', () => {
  test('acquire() without a callback returns a promise of a Lock', async () => {
    const dl = manager({ keyPrefix: 'pf:' })
    const p = dl.acquire('res')
    assert.ok(p instanceof Promise)
    const lock = await p
    assert.ok(lock instanceof createDistLock.Lock)
    assert.equal(lock.key, 'pf:res')
    assert.equal(await redis.get('pf:res'), lock.id)
    assert.equal(await lock.release(), true)
  })

  test('acquire(name, cb) returns undefined and calls cb(null, lock) exactly once', async () => {
    const dl = manager({ keyPrefix: 'cb:' })
    const calls = []
    let ret
    await new Promise((resolve) => {
      ret = dl.acquire('res', (err, lock) => {
        calls.push([err, lock])
        resolve()
      })
    })
    assert.equal(ret, undefined)
    await sleep(100) // a second call would show up here
    assert.equal(calls.length, 1)
    const [err, lock] = calls[0]
    assert.equal(err, null)
    assert.match(lock.id, UUID_V4)
    assert.equal(lock.key, 'cb:res')
    assert.equal(await redis.get('cb:res'), lock.id)
    assert.equal(await lock.release(), true)
  })

  test('callback form gives (null, false) when attempts run out', async () => {
    await redis.set('cbf:held', 'someone-else', 'PX', 10_000)
    const dl = manager({ keyPrefix: 'cbf:', maxRetries: 1, retryDelay: 10 })
    const calls = []
    await new Promise((resolve) => {
      dl.acquire('held', (...args) => {
        calls.push(args)
        resolve()
      })
    })
    await sleep(50)
    assert.deepEqual(calls, [[null, false]])
    assert.equal(await redis.get('cbf:held'), 'someone-else')
  })

  test('a callback that throws reaches uncaughtException and is called once', async () => {
    const indexPath = path.join(__dirname, '..', 'index.js')
    const script = `
      const createDistLock = require(${JSON.stringify(indexPath)})
      const dl = createDistLock(${JSON.stringify(server.url)}, { keyPrefix: 'child:' })
      let calls = 0
      process.on('uncaughtException', (err) => {
        console.log('UNCAUGHT ' + err.message)
        setTimeout(() => {
          console.log('CALLS ' + calls)
          dl.close()
          process.exit(0)
        }, 200)
      })
      dl.acquire('thrower', (err, lock) => {
        calls++
        console.log('CALLBACK ' + (err === null) + ' ' + (lock && lock.key))
        throw new Error('boom-from-callback')
      })
      setTimeout(() => { console.log('TIMEOUT'); process.exit(3) }, 10000)
    `
    const { stdout, code } = await execNode(['-e', script], 15_000)
    assert.equal(code, 0, stdout)
    assert.match(stdout, /^CALLBACK true child:thrower$/m)
    assert.match(stdout, /^UNCAUGHT boom-from-callback$/m)
    assert.match(stdout, /^CALLS 1$/m)
  })

  test('a callback that throws on an error is not called again with its own error', async () => {
    const indexPath = path.join(__dirname, '..', 'index.js')
    const script = `
      const createDistLock = require(${JSON.stringify(indexPath)})
      const dl = createDistLock(${JSON.stringify(server.url)})
      let calls = 0
      process.on('uncaughtException', (err) => {
        console.log('UNCAUGHT ' + err.message)
        setTimeout(() => { console.log('CALLS ' + calls); dl.close(); process.exit(0) }, 200)
      })
      dl.acquire('', (err) => {
        calls++
        console.log('CALLBACK ' + (err && err.code))
        throw new Error('boom-on-error')
      })
      setTimeout(() => { console.log('TIMEOUT'); process.exit(3) }, 10000)
    `
    const { stdout, code } = await execNode(['-e', script], 15_000)
    assert.equal(code, 0, stdout)
    assert.match(stdout, /^CALLBACK EINVALIDARG$/m)
    assert.match(stdout, /^UNCAUGHT boom-on-error$/m)
    assert.match(stdout, /^CALLS 1$/m)
  })
})

describe('lock fields', () => {
  test('id is a UUID v4, unique across grants; key is keyPrefix + resourceName', async () => {
    const dl = manager({ keyPrefix: 'ids:' })
    const ids = new Set()
    for (let i = 0; i < 20; i++) {
      const lock = await dl.acquire(`r${i % 2}`)
      assert.match(lock.id, UUID_V4)
      assert.equal(lock.key, `ids:r${i % 2}`)
      assert.equal(await lock.release(), true)
      ids.add(lock.id)
    }
    assert.equal(ids.size, 20)
  })

  test('an uncontended lock is acquired on attempt 1 with a small integer acquireDelay', async () => {
    const dl = manager({ keyPrefix: 'first:' })
    const lock = await dl.acquire('r')
    assert.equal(lock.acquiredOnAttempt, 1)
    assert.ok(Number.isInteger(lock.acquireDelay), `acquireDelay ${lock.acquireDelay}`)
    assert.ok(lock.acquireDelay >= 0 && lock.acquireDelay < 5000, `acquireDelay ${lock.acquireDelay}`)
    await lock.release()
  })

  test('acquiredOnAttempt counts SET attempts and acquireDelay covers the wait', async () => {
    const holder = manager({ keyPrefix: 'wait:' })
    // maxRetries leaves room for a slow machine: ~100 ms of 20 ms waits is ~5 retries.
    const waiter = manager({ keyPrefix: 'wait:', retryDelay: 20, maxRetries: 50 })
    const held = await holder.acquire('r')
    await redis.config('RESETSTAT')
    const started = Date.now()
    const pending = waiter.acquire('r')
    await sleep(100)
    assert.equal(await held.release(), true)
    const lock = await within(pending, 5000, 'waiting acquire')
    const waited = Date.now() - started
    assert.ok(lock, 'the waiter got the lock within its retries')
    assert.ok(lock.acquiredOnAttempt > 1, `acquiredOnAttempt ${lock.acquiredOnAttempt}`)
    // Polls are retryDelay apart; on top come the attempt right after the
    // release subscription and the one the release wakes.
    assert.ok(
      lock.acquiredOnAttempt <= Math.floor(lock.acquireDelay / 20) + 3,
      `acquiredOnAttempt ${lock.acquiredOnAttempt} in ${lock.acquireDelay} ms`,
    )
    // Every attempt is one SET (NX PX, as in 1.0), the grant one more (the
    // key that keeps its fencing token), and nothing else sent a SET.
    assert.equal(await setCalls(), lock.acquiredOnAttempt + 1)
    assert.ok(Number.isInteger(lock.acquireDelay))
    assert.ok(lock.acquireDelay >= 90, `acquireDelay ${lock.acquireDelay}`)
    assert.ok(lock.acquireDelay <= waited + 5, `acquireDelay ${lock.acquireDelay} > ${waited}`)
    assert.notEqual(lock.id, held.id)
    assert.equal(await redis.get('wait:r'), lock.id)
    await lock.release()
  })
})

describe('maxRetries', () => {
  test('maxRetries 0 tries once and resolves false (not an error) on a held key', async () => {
    await redis.set('mr0:held', 'other', 'PX', 10_000)
    const dl = manager({ keyPrefix: 'mr0:', maxRetries: 0, retryDelay: 3000 })
    await redis.config('RESETSTAT')
    const result = await within(dl.acquire('held'), 10_000, 'acquire with maxRetries 0')
    assert.equal(result, false)
    // Exactly one SET: a retry would have come 3 s later, before the result.
    assert.equal(await setCalls(), 1)
    assert.equal(await redis.get('mr0:held'), 'other')
  })

  test('maxRetries 3 waits 3 x retryDelay, polling, then resolves false', async () => {
    await redis.set('mr3:held', 'other', 'PX', 10_000)
    const dl = manager({ keyPrefix: 'mr3:', maxRetries: 3, retryDelay: 30 })
    await redis.config('RESETSTAT')
    const started = Date.now()
    const result = await within(dl.acquire('held'), 5000, 'acquire with maxRetries 3')
    const took = Date.now() - started
    assert.equal(result, false)
    // The first attempt, one more right after subscribing to release
    // messages, then one poll per retryDelay up to 3 x 30 ms.
    const sets = await setCalls()
    assert.ok(sets >= 4 && sets <= 5, `${sets} SET attempts`)
    assert.ok(took >= 85, `took ${took} ms, expected at least 3 x 30 ms`)
    assert.equal(await redis.get('mr3:held'), 'other')
    assert.ok((await redis.pttl('mr3:held')) > 5000, 'the held key is untouched')
  })

  test('maxRetries 0 on a free key grants on the first attempt', async () => {
    const dl = manager({ keyPrefix: 'mr0free:', maxRetries: 0 })
    const lock = await dl.acquire('r')
    assert.ok(lock)
    assert.equal(lock.acquiredOnAttempt, 1)
    await lock.release()
  })

  test('maxRetries -1 (the default) waits until the lock is released', async () => {
    const holder = manager({ keyPrefix: 'mrinf:' })
    const waiter = manager({ keyPrefix: 'mrinf:', retryDelay: 20 })
    assert.equal(waiter.options.maxRetries, -1)
    const held = await holder.acquire('r')
    const pending = waiter.acquire('r')
    let settled = false
    pending.then(() => (settled = true), () => (settled = true))
    await sleep(400) // ~20 attempts: more than any small default would allow
    assert.equal(settled, false, 'acquire gave up while the lock was held')
    await held.release()
    const lock = await within(pending, 5000, 'acquire with maxRetries -1')
    assert.ok(lock)
    assert.ok(lock.acquiredOnAttempt > 3, `acquiredOnAttempt ${lock.acquiredOnAttempt}`)
    assert.ok(lock.acquireDelay >= 390, `acquireDelay ${lock.acquireDelay}`)
    assert.equal(await redis.get('mrinf:r'), lock.id)
    await lock.release()
  })

  test('maxRetries -1 also waits out a lock that expires on its own', async () => {
    await redis.set('mrexp:r', 'one-point-oh', 'PX', 250)
    const dl = manager({ keyPrefix: 'mrexp:', retryDelay: 20 })
    const lock = await within(dl.acquire('r'), 5000, 'acquire over an expiring key')
    assert.ok(lock)
    assert.ok(lock.acquireDelay >= 150, `acquireDelay ${lock.acquireDelay}`)
    assert.equal(await redis.get('mrexp:r'), lock.id)
    await lock.release()
  })
})

describe('on-Redis format (1.0) and interop with 1.0 processes', () => {
  test('the key holds the plain lock id with a PTTL of at most ttl', async () => {
    const dl = manager({ keyPrefix: 'fmt:', ttl: 5000 })
    const lock = await dl.acquire('r')
    assert.equal(await redis.type('fmt:r'), 'string')
    assert.equal(await redis.get('fmt:r'), lock.id)
    assert.equal(server.cli('GET', 'fmt:r'), lock.id)
    const pttl = await redis.pttl('fmt:r')
    assert.ok(pttl > 0 && pttl <= 5000, `PTTL ${pttl}`)
    assert.ok(pttl > 3000, `PTTL ${pttl}`)
    // One key, nothing else beside it.
    assert.deepEqual(await redis.keys('fmt:*'), ['fmt:r'])
    await lock.release()
    assert.equal(await redis.exists('fmt:r'), 0)
  })

  test('the default ttl is 30 s on Redis', async () => {
    const dl = manager({ keyPrefix: 'fmtdef:' })
    const lock = await dl.acquire('r')
    const pttl = await redis.pttl('fmtdef:r')
    assert.ok(pttl > 25_000 && pttl <= 30_000, `PTTL ${pttl}`)
    await lock.release()
  })

  test('a key set by a 1.0 process (SET NX PX) blocks our acquire', async () => {
    assert.equal(await redis.set('interop:a', 'id-of-a-1.0-process', 'PX', 10_000, 'NX'), 'OK')
    const dl = manager({ keyPrefix: 'interop:', maxRetries: 2, retryDelay: 10 })
    assert.equal(await dl.acquire('a'), false)
    assert.equal(await redis.get('interop:a'), 'id-of-a-1.0-process')
  })

  test('our lock blocks a 1.0-style SET NX, and frees it on release', async () => {
    const dl = manager({ keyPrefix: 'interop:' })
    const lock = await dl.acquire('b')
    assert.equal(await redis.set('interop:b', 'one-point-oh', 'PX', 10_000, 'NX'), null)
    assert.equal(await redis.get('interop:b'), lock.id)
    assert.equal(await lock.release(), true)
    assert.equal(await redis.set('interop:b', 'one-point-oh', 'PX', 10_000, 'NX'), 'OK')
    await redis.del('interop:b')
  })
})

describe('keyPrefix', () => {
  test('defaults to "lock:"', async () => {
    const dl = manager()
    const lock = await dl.acquire('default-prefix-test')
    assert.equal(lock.key, 'lock:default-prefix-test')
    assert.equal(await redis.get('lock:default-prefix-test'), lock.id)
    await lock.release()
  })

  test('may be empty: the key is the resource name', async () => {
    const dl = manager({ keyPrefix: '' })
    const lock = await dl.acquire('bare-name-test')
    assert.equal(lock.key, 'bare-name-test')
    assert.equal(await redis.get('bare-name-test'), lock.id)
    await lock.release()
    assert.equal(await redis.exists('bare-name-test'), 0)
  })
})

describe('resource names', () => {
  const names = {
    unicode: 'ресурс-资源-🔒-é',
    spaces: '  a name with spaces  ',
    newlines: 'line1\nline2\r\nline3',
    long: 'x'.repeat(10_000),
  }
  for (const [label, name] of Object.entries(names)) {
    test(`a name with ${label} works and maps to its exact key`, async () => {
      const dl = manager({ keyPrefix: 'names:', maxRetries: 0 })
      const lock = await dl.acquire(name)
      assert.ok(lock)
      assert.equal(lock.key, 'names:' + name)
      assert.equal(await redis.get('names:' + name), lock.id)
      // The same name is now held...
      assert.equal(await dl.acquire(name), false)
      // ...and released by exactly that key.
      assert.equal(await lock.release(), true)
      assert.equal(await redis.exists('names:' + name), 0)
    })
  }

  test('many grants, refusals and answers of mixed names settled together each get their own key and id', async () => {
    // Outcomes cross from the native core in batches with their strings one
    // after the other: a wrong length would shift every later key or id.
    const dl = manager({ keyPrefix: 'batch:', maxRetries: 0 })
    const names = Array.from({ length: 60 }, (_, i) => [`🔒${i}`, `名${i}é`, `plain-${i}`, `x\u0000${i}`][i % 4])
    const held = await dl.acquire('held')
    const results = await Promise.all([
      ...names.map((name) => dl.acquire(name)),
      ...names.map(() => dl.acquire('held')),
      ...names.map((name, i) => (i % 2 ? dl.isLocked('held') : dl.isLocked(`free-${name}`))),
    ])
    const locks = results.slice(0, names.length)
    const refused = results.slice(names.length, 2 * names.length)
    const answers = results.slice(2 * names.length)
    for (const [i, lock] of locks.entries()) {
      assert.ok(lock, `lock ${i}`)
      assert.equal(lock.key, 'batch:' + names[i])
      assert.equal(await redis.get(lock.key), lock.id)
    }
    assert.equal(new Set(locks.map((l) => l.id)).size, names.length)
    assert.deepEqual(refused, names.map(() => false))
    assert.deepEqual(answers, names.map((_, i) => i % 2 === 1))
    await Promise.all([held.release(), ...locks.map((l) => l.release())])
  })

  test('names that differ only in case or normalization are different locks', async () => {
    const dl = manager({ keyPrefix: 'norm:', maxRetries: 0 })
    const a = await dl.acquire('caf\u00e9')
    const b = await dl.acquire('cafe\u0301')
    const c = await dl.acquire('CAF\u00c9')
    assert.ok(a && b && c)
    await Promise.all([a.release(), b.release(), c.release()])
  })

  const bad = {
    'an empty string': '',
    'a number': 42,
    null: null,
    undefined: undefined,
    'an object': { name: 'x' },
  }
  for (const [label, value] of Object.entries(bad)) {
    test(`${label} is refused with EINVALIDARG (promise form)`, async () => {
      const dl = manager({ keyPrefix: 'badname:' })
      await assert.rejects(dl.acquire(value), (err) => assertInvalidArg(err, 'resourceName'))
    })

    test(`${label} is refused with EINVALIDARG (callback form)`, async () => {
      const dl = manager({ keyPrefix: 'badname:' })
      let ret
      const calls = []
      await new Promise((resolve) => {
        ret = dl.acquire(value, (...args) => {
          calls.push(args)
          resolve()
        })
      })
      assert.equal(ret, undefined)
      await sleep(20)
      assert.equal(calls.length, 1)
      assert.equal(calls[0].length <= 2, true)
      assertInvalidArg(calls[0][0], 'resourceName')
      assert.equal(calls[0][1], undefined)
    })
  }

  test('no key is written for a refused name', async () => {
    assert.deepEqual(await redis.keys('badname:*'), [])
  })

  test('a lone surrogate is refused (it has no UTF-8 form)', async () => {
    const dl = manager({ keyPrefix: 'surr:' })
    await assert.rejects(dl.acquire('\uD800'), (err) => assertInvalidArg(err, 'resourceName'))
    await assert.rejects(dl.acquire('a\uDC00b'), (err) => assertInvalidArg(err, 'resourceName'))
    assert.deepEqual(await redis.keys('surr:*'), [])
    // A well-formed surrogate pair is fine.
    const lock = await dl.acquire('\uD83D\uDD12')
    assert.equal(await redis.get('surr:\u{1F512}'), lock.id)
    await lock.release()
  })

  test('a key of exactly 64 KiB is accepted, one byte more is refused', async () => {
    const dl = manager({ maxRetries: 0 }) // prefix "lock:", 5 bytes
    const fits = 'k'.repeat(MAX_KEY_BYTES - 5)
    const lock = await dl.acquire(fits)
    assert.ok(lock)
    assert.equal(Buffer.byteLength(lock.key), MAX_KEY_BYTES)
    assert.equal(await redis.get('lock:' + fits), lock.id)
    await lock.release()

    await assert.rejects(dl.acquire(fits + 'k'), (err) => assertInvalidArg(err, 'resourceName'))
    await assert.rejects(dl.acquire('k'.repeat(200_000)), (err) => assertInvalidArg(err, 'resourceName'))
  })

  test('the key limit counts UTF-8 bytes, prefix included', async () => {
    // 32 766 two-byte characters: 65 532 bytes; with "lock:" 65 537 > 64 KiB,
    // although the string has far fewer than 65 536 UTF-16 units.
    const dl = manager({ maxRetries: 0 })
    const name = '\u00e9'.repeat(32_766)
    await assert.rejects(dl.acquire(name), (err) => assertInvalidArg(err, 'resourceName'))
    // Without the prefix it fits.
    const bare = manager({ keyPrefix: '', maxRetries: 0 })
    const lock = await bare.acquire(name)
    assert.ok(lock)
    await lock.release()
    // A long prefix counts too.
    const longPrefix = manager({ keyPrefix: 'p'.repeat(MAX_KEY_BYTES - 1), maxRetries: 0 })
    const one = await longPrefix.acquire('x')
    assert.ok(one)
    await one.release()
    await assert.rejects(longPrefix.acquire('xy'), (err) => assertInvalidArg(err, 'resourceName'))
  })
})

describe('concurrency', () => {
  test('concurrent acquires on distinct keys all succeed', async () => {
    const dl = manager({ keyPrefix: 'conc:', maxRetries: 0 })
    const locks = await within(
      Promise.all(Array.from({ length: 100 }, (_, i) => dl.acquire(`r${i}`))),
      10_000,
      '100 concurrent acquires',
    )
    assert.equal(locks.length, 100)
    locks.forEach((lock, i) => {
      assert.ok(lock, `lock ${i}`)
      assert.equal(lock.key, `conc:r${i}`)
      assert.equal(lock.acquiredOnAttempt, 1)
    })
    assert.equal(new Set(locks.map((l) => l.id)).size, 100)
    const values = await redis.mget(locks.map((l) => l.key))
    assert.deepEqual(values, locks.map((l) => l.id))
    assert.deepEqual(await Promise.all(locks.map((l) => l.release())), locks.map(() => true))
  })

  test('concurrent acquires on one key grant it to exactly one caller', async () => {
    const dl = manager({ keyPrefix: 'race:', maxRetries: 0 })
    const results = await Promise.all(Array.from({ length: 20 }, () => dl.acquire('one')))
    const winners = results.filter(Boolean)
    assert.equal(winners.length, 1)
    assert.equal(await redis.get('race:one'), winners[0].id)
    await winners[0].release()
  })
})
