'use strict'

// distLock.lock(): acquire that never gives false (NotAcquiredError
// instead), and the call forms of dist-lock 2.0.x: acquire(name, owner[,
// callback]) with an owner label string.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { startRedis } = require('./helpers/redis-server.js')
const { managerPool, uniqueNames } = require('./helpers/util.js')
const { NotAcquiredError, DistLockError, InvalidArgumentError, Lock } = require('..')

let server
const managers = managerPool()
const name = uniqueNames('lockm')

before(async () => {
  server = await startRedis()
})

after(async () => {
  await managers.closeAll()
  await server?.stop()
})

const manager = (options) => managers.open(server.url, options)

const viaCallback = (start) => new Promise((resolve) => start((...args) => resolve(args)))

test('lock() gives a Lock on a free key, like acquire', async () => {
  const dl = manager()
  const resource = name('free')
  const lock = await dl.lock(resource)
  assert.ok(lock instanceof Lock)
  assert.equal(server.cli('GET', lock.key), lock.id)
  assert.equal(await lock.release(), true)
})

test('lock() rejects with NotAcquiredError (ENOTACQUIRED) where acquire gives false', async () => {
  const dl = manager()
  const resource = name('held')
  const holder = await dl.acquire(resource)
  assert.equal(await dl.acquire(resource, { maxRetries: 0 }), false)
  await assert.rejects(dl.lock(resource, { maxRetries: 0 }), (err) => {
    assert.ok(err instanceof NotAcquiredError && err instanceof DistLockError)
    assert.equal(err.code, 'ENOTACQUIRED')
    assert.match(err.message, new RegExp(resource))
    return true
  })
  await assert.rejects(dl.lock(resource, { timeout: 50 }), { code: 'ENOTACQUIRED' })
  // The holder's lock was left alone.
  assert.equal(server.cli('GET', holder.key), holder.id)
  await holder.release()
})

test('lock() with a callback: (null, lock), or a NotAcquiredError', async () => {
  const dl = manager({ maxRetries: 0 })
  const resource = name('cb')
  const [err, lock] = await viaCallback((cb) => dl.lock(resource, cb))
  assert.equal(err, null)
  assert.ok(lock instanceof Lock)
  const [err2, none] = await viaCallback((cb) => dl.lock(resource, { maxRetries: 0 }, cb))
  assert.equal(err2.code, 'ENOTACQUIRED')
  assert.equal(none, undefined)
  await lock.release()
})

test('lock() checks its arguments as acquire does', async () => {
  const dl = manager()
  await assert.rejects(dl.lock(''), { code: 'EINVALIDARG' })
  await assert.rejects(dl.lock(name('bad'), { ttl: -1 }), (err) => err instanceof InvalidArgumentError && /ttl/.test(err.message))
  assert.throws(() => dl.lock(name('bad'), {}, 'not a function'), { code: 'EINVALIDARG' })
})

test('2.0.x form: acquire(name, owner) and acquire(name, owner, callback) take the lock', async () => {
  const dl = manager()
  const resource = name('owner')
  const lock = await dl.acquire(resource, 'worker-7')
  assert.ok(lock instanceof Lock)
  // The format of 1.0 is written: the key holds the plain id.
  assert.equal(server.cli('TYPE', lock.key), 'string')
  assert.equal(server.cli('GET', lock.key), lock.id)
  await lock.release()
  const [err, viaCb] = await viaCallback((cb) => dl.acquire(resource, 'worker-7', cb))
  assert.equal(err, null)
  assert.ok(viaCb instanceof Lock)
  // Waiting works as without a label: limited retries on a held key give false.
  assert.equal(await manager({ maxRetries: 0 }).acquire(resource, 'other'), false)
  await viaCb.release()
  const viaLock = await dl.lock(resource, '')
  await viaLock.release()
})

test('2.0.x form: an owner label longer than 256 characters is refused, naming "owner"', async () => {
  const dl = manager()
  const resource = name('long')
  assert.ok(await (await dl.acquire(resource, 'x'.repeat(256))).release())
  await assert.rejects(dl.acquire(resource, 'x'.repeat(257)), (err) => {
    assert.ok(err instanceof InvalidArgumentError)
    assert.match(err.message, /"owner"/)
    assert.match(err.message, /256/)
    return true
  })
  const [err] = await viaCallback((cb) => dl.acquire(resource, 'y'.repeat(1000), cb))
  assert.equal(err.code, 'EINVALIDARG')
  await assert.rejects(dl.lock(resource, 'z'.repeat(257)), { code: 'EINVALIDARG' })
  // Nothing was taken.
  assert.equal(server.cli('EXISTS', `lock:${resource}`), '0')
})
