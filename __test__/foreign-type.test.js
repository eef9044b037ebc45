'use strict'

// A lock key that holds another type than a string counts as held by
// someone else. dist-lock 2.0.1 (the 1.0 author's later version) stores a
// lock as a hash, `HMSET key id owner` + `PEXPIRE`: while such a process
// holds a key, attempts are refused with the hash's PTTL (waiters wake at its
// expiry), limited retries give false, isLocked says true, isHeld, release
// and extend of our own lock on that key say it is not ours, and the hash is
// never modified.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { execFile } = require('node:child_process')
const { startRedis } = require('./helpers/redis-server.js')
const { managerPool, uniqueNames, within } = require('./helpers/util.js')

let server
const managers = managerPool()
const uniqueName = uniqueNames('foreign')

before(async () => {
  server = await startRedis()
})

after(async () => {
  managers.closeAll()
  await server.stop()
})

function manager(options) {
  return managers.open(server.url, options)
}

/** Takes `key` the way dist-lock 2.0.1 does, for `ttlMs`. */
function holdAsHash(key, ttlMs = 1500) {
  server.cli('HSET', key, 'id', 'owner')
  if (ttlMs !== null) server.cli('PEXPIRE', key, String(ttlMs))
}

function assertHashUnchanged(key) {
  assert.equal(server.cli('TYPE', key), 'hash')
  assert.equal(server.cli('HGETALL', key), 'id\nowner')
}

test('limited retries give false, isLocked is true, and the hash is not modified', async () => {
  const name = uniqueName('limited')
  const key = `lock:${name}`
  holdAsHash(key, 20_000)
  const m = manager({ retryDelay: 20 })
  assert.equal(await m.acquire(name, { maxRetries: 0 }), false)
  assert.equal(await m.acquire(name, { maxRetries: 3 }), false)
  assert.equal(await m.acquire(name, { maxRetries: 2, fair: true }), false)
  assert.equal(await m.acquire(name, { timeout: 100 }), false)
  assert.equal(await m.isLocked(name), true)
  await new Promise((resolve, reject) => {
    m.acquire(name, { maxRetries: 0 }, (err, lock) => (err ? reject(err) : resolve(assert.equal(lock, false))))
  })
  assertHashUnchanged(key)
  const pttl = Number(server.cli('PTTL', key))
  assert.ok(pttl > 15_000 && pttl <= 20_000, `the hash's ttl changed: ${pttl}`)
})

test('a waiter is granted when the hash expires, at its ttl rather than at its retryDelay', async () => {
  const name = uniqueName('waiter')
  const key = `lock:${name}`
  holdAsHash(key, 1500)
  const m = manager({ retryDelay: 60_000 })
  const started = performance.now()
  const lock = await within(m.acquire(name), 20_000, 'the waiter')
  const waited = performance.now() - started
  assert.ok(lock, 'no lock after the hash expired')
  assert.ok(waited >= 1000, `granted after ${waited.toFixed(0)} ms, while the hash was there`)
  assert.equal(server.cli('TYPE', key), 'string')
  assert.equal(server.cli('GET', key), lock.id)
  assert.equal(await lock.release(), true)
})

test('a hash without ttl: attempts refused, a waiter gets the key once it is deleted', async () => {
  const name = uniqueName('no-ttl')
  const key = `lock:${name}`
  holdAsHash(key, null)
  const m = manager({ retryDelay: 50 })
  assert.equal(await m.acquire(name, { maxRetries: 2 }), false)
  const waiting = m.acquire(name)
  setTimeout(() => server.cli('DEL', key), 300)
  const lock = await within(waiting, 20_000, 'the waiter')
  assert.ok(lock)
  await lock.release()
})

test('isHeld, release and extend of a lock whose key became a hash: not ours, no error, hash untouched', async () => {
  const name = uniqueName('taken-over')
  const key = `lock:${name}`
  const m = manager({ autoExtend: false })
  const lock = await m.acquire(name, { ttl: 200 })
  await within(
    (async () => {
      while (server.cli('EXISTS', key) === '1') await new Promise((r) => setTimeout(r, 20))
    })(),
    10_000,
    'the expiry',
  )
  holdAsHash(key, 20_000)
  assert.equal(await lock.isHeld(), false)
  await assert.rejects(lock.extend(10), (err) => err.code === 'ELOCKLOST')
  assert.equal(await lock.release(), false)
  assertHashUnchanged(key)
  assert.ok(Number(server.cli('PTTL', key)) > 15_000)
})

test('the CLI status says "locked" for a hash lock', async () => {
  const name = uniqueName('cli')
  holdAsHash(`lock:${name}`, 20_000)
  const cli = path.join(__dirname, '..', 'bin', 'dist-lock.js')
  const { code, stdout } = await new Promise((resolve) => {
    execFile(process.execPath, [cli, 'status', '--redis', server.url, name], { timeout: 20_000 }, (err, out) =>
      resolve({ code: err ? err.code : 0, stdout: out }),
    )
  })
  assert.equal(stdout.trim(), 'locked')
  assert.equal(code, 1)
})
