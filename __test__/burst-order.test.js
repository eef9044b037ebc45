'use strict'

// Call order under bursts: thousands of acquire() calls of one key started in
// one tick are granted in the order of the calls (README: "waiters of one key
// in one manager are granted in call order"), in plain and fair mode and with
// Redlock. Each grant is released at once, so the burst drains through the
// local handoff; the test counts the grants that came after a later caller's.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { startRedis } = require('./helpers/redis-server.js')
const { managerPool, uniqueNames, within } = require('./helpers/util.js')

const servers = []
const managers = managerPool()
const uniqueName = uniqueNames('burst')

before(async () => {
  for (let i = 0; i < 3; i++) servers.push(await startRedis())
})

after(async () => {
  managers.closeAll()
  for (const server of servers) await server.stop()
})

/**
 * Starts `n` acquires of one key in one tick, each releasing its lock at
 * once; returns the call numbers in grant order.
 */
async function burst(m, name, n) {
  const order = []
  const calls = []
  for (let i = 0; i < n; i++) {
    calls.push(
      m.acquire(name).then(async (lock) => {
        assert.ok(lock, `call ${i} was not granted`)
        order.push(i)
        assert.equal(await lock.release(), true)
      }),
    )
  }
  await within(Promise.all(calls), 60_000, `a burst of ${n} acquires`)
  return order
}

/** Grants that came after the grant of a later call. */
function lateGrants(order) {
  let late = 0
  let latest = -1
  for (const call of order) {
    if (call < latest) late += 1
    else latest = call
  }
  return late
}

const modes = [
  { what: 'plain', redis: () => servers[0].url, options: {} },
  { what: 'fair', redis: () => servers[0].url, options: { fair: true } },
  { what: 'Redlock (3 masters)', redis: () => servers.map((s) => s.url), options: {} },
]

for (const mode of modes) {
  for (const n of [1_000, 5_000]) {
    test(`${mode.what}: a burst of ${n} acquires of one key in one tick is granted in call order`, async (t) => {
      const m = managers.open(mode.redis(), mode.options)
      const order = await burst(m, uniqueName(mode.what.split(' ')[0]), n)
      assert.equal(order.length, n)
      const late = lateGrants(order)
      assert.equal(late, 0, `${late} of ${n} grants came after a later call's`)
      t.diagnostic(`${mode.what}, ${n} calls: ${late} out-of-order grants`)
    })
  }
}

test('the burst leaves nothing queued and the key free; an uncontended acquire is still one attempt', async () => {
  const m = managers.open(servers[0].url)
  const name = uniqueName('after')
  await burst(m, name, 200)
  assert.equal(await m.isLocked(name), false)
  const lock = await m.acquire(name)
  assert.equal(lock.acquiredOnAttempt, 1)
  assert.equal(await lock.release(), true)
})
