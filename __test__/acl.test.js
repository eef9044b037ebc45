'use strict'

// ACL users: dist-lock works as a user restricted to the key prefix, the
// release channels and the commands it needs (the line docs/security.md gives),
// and such a user cannot reach other keys. Also `username`/`password`/`db`
// given as options and in the URL.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const Redis = require('ioredis')
const { startRedis } = require('./helpers/redis-server.js')
const { managerPool, within, uniqueNames, sleep } = require('./helpers/util.js')
const { ConnectionError, RedisError } = require('..')

/**
 * The least-privilege ACL of docs/security.md, for the default key prefix `lock:`:
 * the lock keys, their fencing counters and fair-mode queues (which share
 * the `{lock:name}` hash tag), the release channels, and the commands that
 * dist-lock sends or its scripts run.
 */
const USER = 'locker'
const PASSWORD = 'p@ss/w:rd'
const ACL_RULES = [
  'on', `>${PASSWORD}`, 'resetkeys', '~lock:*', '~{lock:*}:*', 'resetchannels', '&{lock:*}:released',
  '-@all', '+eval', '+evalsha', '+get', '+set', '+del', '+exists', '+incr', '+pexpire', '+pttl', '+time',
  '+zadd', '+zrange', '+zrem', '+zscore', '+publish', '+subscribe', '+unsubscribe', '+wait', '+select', '+ping', '+info',
]

describe('ACL users', () => {
  let server
  let admin
  const managers = managerPool()
  const name = uniqueNames('acl')
  const options = { connectTimeout: 2000, commandTimeout: 3000 }

  before(async () => {
    server = await startRedis()
    admin = new Redis(server.port, '127.0.0.1')
    await admin.call('ACL', 'SETUSER', USER, ...ACL_RULES)
  })

  after(async () => {
    await managers.closeAll()
    admin?.disconnect()
    await server?.stop()
  })

  const userUrl = (db = '') =>
    `redis://${encodeURIComponent(USER)}:${encodeURIComponent(PASSWORD)}@127.0.0.1:${server.port}${db}`

  test('the README ACL is enough for every feature: wait and wake-up, fair mode, extend, auto-extension, fencing', async () => {
    const m = managers.open(userUrl(), { ...options, retryDelay: 10_000 })
    // With +info the eviction check reads the policy: no "could not check".
    const warnings = []
    m.on('warning', (w) => warnings.push(w))
    const resource = name('all')
    const first = await within(m.acquire(resource), 10_000, 'acquire as the ACL user')
    assert.ok(first)
    assert.equal(await admin.get(first.key), first.id)
    assert.equal(first.fencingToken, 1)
    const waiting = m.acquire(resource)
    setTimeout(() => first.release(), 50)
    const second = await within(waiting, 5_000, 'woken by the release message (the channel is allowed)')
    assert.ok(second)
    await second.extend(5)
    assert.ok((await admin.pttl(second.key)) > 3000, 'extended to 5 s')
    assert.equal(await second.isHeld(), true)
    assert.equal(await m.isLocked(resource), true)
    assert.equal(await second.release(), true)

    const fairName = name('fair')
    const a = await m.acquire(fairName, { fair: true })
    const b = m.acquire(fairName, { fair: true })
    setTimeout(() => a.release(), 50)
    const bLock = await within(b, 10_000, 'fair waiter granted')
    assert.ok(bLock)
    assert.equal(await bLock.release(), true)

    const auto = await m.acquire(name('auto'), { ttl: 300, autoExtend: true })
    await sleep(700)
    assert.equal(auto.lost, false, 'auto-extension kept the lock')
    assert.equal(await auto.isHeld(), true)
    assert.equal(await auto.release(), true)
    assert.deepEqual(warnings, [], 'the eviction check could read INFO memory')
  })

  test('username, password and db as options: the lock is in that database', async () => {
    const m = managers.open({ host: '127.0.0.1', port: server.port, username: USER, password: PASSWORD, db: 3 }, options)
    const lock = await within(m.acquire(name('db')), 10_000, 'acquire in db 3')
    assert.ok(lock)
    const db3 = new Redis({ port: server.port, host: '127.0.0.1', db: 3 })
    try {
      assert.equal(await db3.get(lock.key), lock.id, 'the key is in db 3')
      assert.equal(await admin.exists(lock.key), 0, 'not in db 0')
    } finally {
      db3.disconnect()
    }
    assert.equal(await lock.release(), true)
    // The same through the URL's path.
    const byUrl = managers.open(userUrl('/4'), options)
    const other = await byUrl.acquire(name('db-url'))
    assert.ok(other)
    const db4 = new Redis({ port: server.port, host: '127.0.0.1', db: 4 })
    try {
      assert.equal(await db4.get(other.key), other.id)
    } finally {
      db4.disconnect()
    }
    assert.equal(await other.release(), true)
  })

  test('outside its key prefix the user is refused (NOPERM as EREDIS), and nothing is left behind', async () => {
    const m = managers.open(userUrl(), { ...options, keyPrefix: 'other:' })
    const resource = name('noperm')
    await assert.rejects(within(m.acquire(resource), 10_000, 'refused'), (err) => {
      assert.ok(err instanceof RedisError, `expected RedisError, got ${err}`)
      assert.equal(err.code, 'EREDIS')
      assert.match(err.message, /NOPERM/)
      return true
    })
    assert.equal(await admin.exists(`other:${resource}`), 0)
  })

  test('a wrong password is a ConnectionError that says so, not a hang', async () => {
    const bad = managers.open(`redis://${USER}:wrong@127.0.0.1:${server.port}`, options)
    await assert.rejects(within(bad.acquire(name('wrongpass')), 15_000, 'refused'), (err) => {
      assert.ok(err instanceof ConnectionError, `expected ConnectionError, got ${err}`)
      assert.match(err.message, /authentication failed/i)
      return true
    })
  })
})

test("the rules used here are the README's single-server ACL line (its password aside)", () => {
  const { docAcl } = require('./helpers/doc-acl.js')
  const withoutPassword = (rules) => rules.filter((r) => !r.startsWith('>'))
  assert.deepEqual(withoutPassword(ACL_RULES), withoutPassword(docAcl('single').rules))
  // The Sentinel master's line is the same plus +role.
  assert.deepEqual(withoutPassword(docAcl('sentinel-master').rules), [...withoutPassword(ACL_RULES), '+role'])
})
