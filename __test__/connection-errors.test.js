'use strict'

// Connection errors name the server they tried (`127.0.0.1:6380: ...`), in
// every mode: one server, Cluster seeds, Sentinels, and each Redlock master.
// (The topology suites check the same against live deployments.)

const { test, describe, after } = require('node:test')
const assert = require('node:assert/strict')
const distLock = require('..')
const { startRedis, freePort } = require('./helpers/redis-server.js')
const { managerPool, within } = require('./helpers/util.js')
const { ConnectionError } = distLock

const options = { connectTimeout: 500, commandTimeout: 1000, maxRetries: 0 }

/** The error of `promise`, which must reject. */
async function failure(promise, what) {
  const err = await within(promise.then(() => null, (e) => e), 10_000, what)
  assert.ok(err instanceof ConnectionError, `${what}: expected a ConnectionError, got ${err && err.stack}`)
  return err
}

describe('connection errors name the server', () => {
  const managers = managerPool()
  after(() => managers.closeAll())

  test('one server: refused, and after the server died under a working manager', async () => {
    const port = await freePort()
    const m = managers.open(`redis://127.0.0.1:${port}`, options)
    for (const call of [() => m.acquire('ce-single'), () => m.isLocked('ce-single')]) {
      const err = await failure(call(), 'refused')
      assert.ok(err.message.startsWith(`127.0.0.1:${port}: `), err.message)
      assert.match(err.message, /refused/i)
    }

    const server = await startRedis()
    try {
      const live = managers.open(server.url, options)
      const lock = await live.acquire('ce-live')
      await server.stop()
      const err = await failure(lock.extend(5), 'extend after the server died')
      assert.ok(err.message.startsWith(`127.0.0.1:${server.port}: `), err.message)
      // Named once, not once per layer.
      assert.equal(err.message.split(`127.0.0.1:${server.port}`).length, 2, err.message)
    } finally {
      await server.stop()
    }
  })

  test('Cluster: the seeds; Sentinel: the Sentinels and the master name; Redlock: each master', async () => {
    const [a, b, c] = await Promise.all([freePort(), freePort(), freePort()])
    const cluster = managers.open({ cluster: [`redis://127.0.0.1:${a}`, `redis://127.0.0.1:${b}`] }, options)
    let err = await failure(cluster.acquire('ce-cluster'), 'cluster')
    assert.match(err.message, new RegExp(`^Redis Cluster \\(cluster 127\\.0\\.0\\.1:${a}, 127\\.0\\.0\\.1:${b}\\): `))

    const sentinel = managers.open({ sentinels: [`redis://127.0.0.1:${a}`], masterName: 'ce-master' }, options)
    err = await failure(sentinel.acquire('ce-sentinel'), 'sentinel')
    assert.match(err.message, new RegExp(`^Redis Sentinel \\(master "ce-master" of sentinels 127\\.0\\.0\\.1:${a}\\): `))

    const redlock = managers.open([a, b, c].map((p) => `redis://127.0.0.1:${p}`), options)
    err = await failure(redlock.acquire('ce-redlock'), 'redlock')
    for (const p of [a, b, c]) {
      const named = err.message.split(`127.0.0.1:${p}: `).length - 1
      assert.equal(named, 1, `master ${p} named once: ${err.message}`)
    }
  })
})
