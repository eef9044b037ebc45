'use strict'

// Redis Cluster mode against a real cluster of 3 masters with one replica
// each (helpers/topology.js): `distLock({ cluster: [seed URLs] }, options)`.
//
//  - the core API (promise and callback forms): the key holds the lock id on
//    the master that serves its slot; the fencing token increases, from one
//    counter per hash slot (`{lock:~xxxxx}:fencing`, in the slot of the lock
//    keys it serves), so the keys left do not grow with the number of names
//    and no script fails with CROSSSLOT; an old `{K}:fence` is honoured;
//  - locks whose keys live on different masters; a resource name with a
//    hash tag (`{user1}`): its keys stay in one slot;
//  - fair mode and the wake-up of a waiter on release;
//  - mutual exclusion: many tasks, a non-atomic counter, no overlap;
//  - a slot moved to another master while its lock is held: the lock stays
//    exclusive during and after the move, and its release works;
//  - a master failed over (CLUSTER FAILOVER on its replica) while locks are
//    taken: operations work again within a bounded time, with no overlap.
//
// Until the native cluster mode is built, the library tests are skipped
// (the factory refuses the `cluster` option); they turn on by themselves
// once it accepts it. The harness tests run in any case.
//
// The library tests run as the least-privilege Cluster user of docs/security.md
// (its "ACL users" line, read from that file and created on every node).
//
// Timings are loose upper bounds (a busy 2-core machine); the Redis on
// 127.0.0.1:6379 is never used.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { performance } = require('node:perf_hooks')
const distLock = require('../..')
const { startCluster, waitUntil } = require('../helpers/topology.js')
const { sleep, managerPool, within, uniqueNames } = require('../helpers/util.js')
const { wokenAtRelease } = require('./wake.js')
const { docAcl } = require('../helpers/doc-acl.js')

const { DistLockError } = distLock

/**
 * Why the library tests are skipped: null if the factory accepts
 * `{ cluster: [...] }`, otherwise the reason.
 */
function clusterModeMissing() {
  let m
  try {
    m = distLock({ cluster: ['redis://127.0.0.1:1'] }, { connectTimeout: 100 })
  } catch (err) {
    if (err && err.code === 'EINVALIDARG' && /unknown option "cluster"|not supported/i.test(err.message)) {
      return `cluster mode not built yet: ${err.message.split(';')[0]}`
    }
    throw err
  }
  m.close()
  return null
}
const SKIP = clusterModeMissing()

const BOUNDS = { connectTimeout: 2_000, commandTimeout: 2_000 }
const ACL = docAcl('cluster')

let cluster
const managers = managerPool()
const uniqueName = uniqueNames('cluster')

before(async () => {
  cluster = await startCluster({ masters: 3, replicasPerMaster: 1 })
  // On every node, replicas included: a failover promotes one.
  for (const n of cluster.nodes) assert.equal(cluster.cli(n.port, 'ACL', 'SETUSER', ACL.user, ...ACL.rules), 'OK')
})

after(async () => {
  await managers.closeAll()
  if (cluster) await cluster.stop()
})

/** A manager that connects as the README's Cluster user. */
function manager(options) {
  const connection = { cluster: cluster.seedUrls, username: ACL.user, password: ACL.password }
  return managers.track(distLock(connection, { ...BOUNDS, ...options }))
}

const keyOf = (name) => `lock:${name}`

/** The fencing counter keys (`{lock:~xxxxx}:fencing`) on every master, by slot. */
function counters() {
  const bySlot = new Map()
  for (const port of cluster.masterPorts()) {
    for (const key of cluster.cli(port, 'KEYS', '{lock:~*}:fencing').split('\n').filter(Boolean)) {
      bySlot.set(cluster.keySlot(key), key)
    }
  }
  return bySlot
}

/** The fencing counter of the slot of `key`, and its value. */
function counterOf(key) {
  const slot = cluster.keySlot(key)
  const name = counters().get(slot)
  assert.ok(name, `no fencing counter in slot ${slot}`)
  return { name, value: cluster.cli(cluster.slotOwnerOfSlot(slot), 'GET', name) }
}

/** The number of keys on all masters. */
function keysOnMasters() {
  return cluster.masterPorts().reduce((n, port) => n + Number(cluster.cli(port, 'DBSIZE')), 0)
}

/** The value of `key` on the master that serves it. */
function valueOf(key) {
  return cluster.cli(cluster.slotOwner(key), 'GET', key)
}

/** A fresh resource name whose lock key the master on `port` serves. */
function nameServedBy(port, label) {
  for (let i = 0; i < 500; i++) {
    const name = uniqueName(label)
    if (cluster.slotOwner(keyOf(name)) === port) return name
  }
  throw new Error(`no name found for the master on ${port}`)
}

function viaCallback(fn) {
  return new Promise((resolve, reject) => {
    const ret = fn((err, value) => (err ? reject(err) : resolve(value)))
    assert.equal(ret, undefined)
  })
}

/**
 * Tasks that take `name` in turn and increment a local counter with an async
 * gap inside the lock; counts overlaps, errors (retried) and grants after
 * `since()` says so. `stop()` ends them; `done` settles when they have.
 */
function contenders(ms, names, { tasks = 3, ttl = 3_000 } = {}) {
  const state = { inside: new Map(), overlaps: 0, increments: 0, counters: new Map(), errors: [], releasedFalse: 0, grants: [] }
  let stopped = false
  const run = async (m, name) => {
    while (!stopped) {
      let lock
      try {
        lock = await m.acquire(name, { ttl, timeout: 5_000 })
      } catch (err) {
        state.errors.push(err)
        await sleep(100)
        continue
      }
      if (!lock) continue
      state.grants.push(performance.now())
      const inside = (state.inside.get(name) || 0) + 1
      state.inside.set(name, inside)
      if (inside > 1) state.overlaps++
      const value = state.counters.get(name) || 0
      await sleep(Math.floor(Math.random() * 3))
      state.counters.set(name, value + 1)
      state.increments++
      state.inside.set(name, state.inside.get(name) - 1)
      try {
        if (!(await lock.release())) state.releasedFalse++
      } catch (err) {
        state.errors.push(err)
      }
    }
  }
  const done = Promise.all(ms.flatMap((m) => names.flatMap((name) => Array.from({ length: tasks }, () => run(m, name)))))
  return {
    state,
    stop: () => {
      stopped = true
      return within(done, 30_000, 'the contenders')
    },
  }
}

// ---------------------------------------------------------------------------

describe('the harness', () => {
  test('startCluster: 3 masters with a replica each, cluster_state ok on every node', () => {
    assert.equal(cluster.nodes.length, 6)
    const masters = cluster.masterPorts()
    assert.equal(masters.length, 3)
    for (const port of masters) {
      const replica = cluster.replicaOf(port)
      assert.ok(replica, `master ${port} has no replica`)
      assert.equal(cluster.node(replica).role, 'replica')
    }
    for (const n of cluster.nodes) {
      assert.ok(n.port !== 6379)
      assert.match(cluster.cli(n.port, 'CLUSTER', 'INFO'), /cluster_state:ok/)
    }
    assert.equal(cluster.seedUrls.length, 2)
    assert.equal(cluster.urls.length, 6)
  })

  test('slotOwner: its master takes the key, the others answer MOVED to it', () => {
    const key = uniqueName('owner')
    const owner = cluster.slotOwner(key)
    assert.equal(cluster.cli(owner, 'SET', key, 'v'), 'OK')
    for (const port of cluster.masterPorts().filter((p) => p !== owner)) {
      assert.match(cluster.cli(port, 'GET', key), new RegExp(`^MOVED ${cluster.keySlot(key)} 127\\.0\\.0\\.1:${owner}$`))
    }
    cluster.cli(owner, 'DEL', key)
  })

  test('migrateSlot: the slot and its keys move; ASK while migrating, MOVED after', async () => {
    const key = uniqueName('migrate')
    const from = cluster.slotOwner(key)
    const to = cluster.masterPorts().find((p) => p !== from)
    const slot = cluster.keySlot(key)
    cluster.cli(from, 'SET', key, 'moved-value')
    let during = null
    const result = await cluster.migrateSlot(slot, from, to, {
      whileMigrating: async () => {
        during = cluster.cli(from, 'GET', key)
      },
    })
    assert.equal(result.keys, 1)
    assert.equal(during, `ASK ${slot} 127.0.0.1:${to}`)
    assert.equal(cluster.slotOwner(key), to)
    assert.equal(cluster.cli(to, 'GET', key), 'moved-value')
    assert.equal(cluster.cli(from, 'GET', key), `MOVED ${slot} 127.0.0.1:${to}`)
    // And back, so the layout stays as created.
    await cluster.migrateSlot(slot, to, from)
    assert.equal(cluster.cli(from, 'GET', key), 'moved-value')
    cluster.cli(from, 'DEL', key)
  })
})

// ---------------------------------------------------------------------------

describe('dist-lock over a cluster of 3 masters (+1 replica each)', { skip: SKIP || false }, () => {
  test('promise form: acquire, isLocked, isHeld, extend, release; the key on the master of its slot', async () => {
    const m = manager()
    const name = uniqueName('api')
    const lock = await m.acquire(name, { ttl: 10_000 })
    assert.ok(lock, 'not granted')
    assert.equal(lock.key, keyOf(name))
    assert.ok(Number.isSafeInteger(lock.fencingToken) && lock.fencingToken > 0, `fencingToken ${lock.fencingToken}`)
    const owner = cluster.slotOwner(lock.key)
    assert.equal(cluster.cli(owner, 'GET', lock.key), lock.id)
    const pttl = Number(cluster.cli(owner, 'PTTL', lock.key))
    assert.ok(pttl > 8_000 && pttl <= 10_000, `PTTL ${pttl}`)
    assert.equal(await m.isLocked(name), true)
    assert.equal(await lock.isHeld(), true)
    await lock.extend(20)
    assert.ok(Number(cluster.cli(owner, 'PTTL', lock.key)) > 18_000)
    assert.equal(await m.acquire(name, { maxRetries: 0 }), false, 'granted twice')
    assert.equal(await lock.release(), true)
    assert.equal(cluster.cli(owner, 'EXISTS', lock.key), '0')
    assert.equal(await m.isLocked(name), false)
    assert.equal(await lock.isHeld(), false)
    assert.equal(await lock.release(), false)
  })

  test("the README's Cluster ACL user is least privilege: other keys are refused, and the single-server line is not enough", async () => {
    // Runs as the restricted user: a prefix outside its key patterns is refused.
    const other = manager({ keyPrefix: 'other:' })
    await assert.rejects(within(other.acquire(uniqueName('acl')), 10_000, 'acquire outside the ACL'), (err) => {
      assert.ok(err instanceof DistLockError, String(err))
      assert.match(err.message, /NOPERM|no permissions/i)
      return true
    })
    // The single-server line lacks cluster|slots: every call fails with NOPERM.
    const single = docAcl('single')
    const user = 'dist-lock-single-line'
    for (const n of cluster.nodes) assert.equal(cluster.cli(n.port, 'ACL', 'SETUSER', user, ...single.rules), 'OK')
    const m = managers.track(
      distLock({ cluster: cluster.seedUrls, username: user, password: single.password }, BOUNDS),
    )
    await assert.rejects(within(m.acquire(uniqueName('acl')), 15_000, 'acquire with the single-server line'), (err) => {
      assert.ok(err instanceof DistLockError, String(err))
      assert.match(err.message, /cluster\|slots|NOPERM|no permissions/i)
      return true
    })
  })

  test('callback form: acquire, isLocked, isHeld, extend, release', async () => {
    const m = manager()
    const name = uniqueName('callbacks')
    const lock = await viaCallback((cb) => m.acquire(name, { ttl: 10_000 }, cb))
    assert.ok(lock)
    assert.equal(valueOf(lock.key), lock.id)
    assert.equal(await viaCallback((cb) => m.isLocked(name, cb)), true)
    assert.equal(await viaCallback((cb) => lock.isHeld(cb)), true)
    await viaCallback((cb) => lock.extend(15, cb))
    assert.equal(await viaCallback((cb) => lock.release(cb)), true)
    assert.equal(await viaCallback((cb) => m.isLocked(name, cb)), false)
  })

  test('locks on every master at once: keys in different slots, each on its own master', async () => {
    const m = manager()
    const other = manager()
    const names = cluster.masterPorts().map((port) => nameServedBy(port, 'spread'))
    const locks = await Promise.all(names.map((n) => m.acquire(n, { ttl: 10_000 })))
    const slots = new Set(locks.map((l) => cluster.keySlot(l.key)))
    assert.equal(slots.size, 3)
    assert.equal(new Set(locks.map((l) => cluster.slotOwner(l.key))).size, 3, 'not on 3 masters')
    for (const l of locks) assert.equal(valueOf(l.key), l.id)
    for (const n of names) assert.equal(await other.acquire(n, { maxRetries: 0 }), false)
    assert.deepEqual(await Promise.all(locks.map((l) => l.release())), [true, true, true])
    for (const n of names) {
      const again = await other.acquire(n, { maxRetries: 0 })
      assert.ok(again, `${n} not free after its release`)
      await again.release()
    }
  })

  test('a resource name with a hash tag {user1}: its lock and counter keys share the slot of "user1"', async () => {
    const m = manager()
    const slot = cluster.keySlot('user1')
    const a = await m.acquire('{user1}', { ttl: 10_000 })
    const b = await m.acquire('{user1}:profile', { ttl: 10_000 })
    assert.ok(a && b)
    assert.notEqual(a.id, b.id)
    assert.equal(a.key, 'lock:{user1}')
    assert.equal(cluster.keySlot(a.key), slot)
    assert.equal(cluster.keySlot(b.key), slot)
    const owner = cluster.slotOwnerOfSlot(slot)
    assert.equal(cluster.cli(owner, 'GET', a.key), a.id)
    assert.equal(cluster.cli(owner, 'GET', b.key), b.id)
    // The counter of the slot of "user1" gave both tokens, in grant order.
    assert.ok(b.fencingToken > a.fencingToken)
    assert.equal(counterOf(a.key).value, String(b.fencingToken))
    assert.equal(await manager().acquire('{user1}', { maxRetries: 0 }), false)
    assert.equal(await a.release(), true)
    assert.equal(await b.release(), true)
    const again = await m.acquire('{user1}')
    assert.ok(again.fencingToken > a.fencingToken)
    assert.equal(await again.release(), true)
  })

  test('the fencing token increases across grants and managers', async () => {
    const ms = [manager(), manager()]
    const name = uniqueName('fence')
    const tokens = []
    for (let i = 0; i < 6; i++) {
      const lock = await ms[i % 2].acquire(name)
      tokens.push(lock.fencingToken)
      assert.equal(await lock.release(), true)
    }
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], `tokens ${tokens}`)
    const counter = counterOf(keyOf(name))
    assert.equal(counter.value, String(tokens.at(-1)))
    assert.equal(cluster.keySlot(counter.name), cluster.keySlot(keyOf(name)))
  })

  test('N names in 10 slots leave one counter per slot: the same keys for N = 20 and N = 500, no CROSSSLOT', async (t) => {
    const m = manager()
    const groups = Array.from({ length: 10 }, () => uniqueName('slot'))
    const slots = new Set(groups.map((g) => cluster.keySlot(g)))
    const tokens = new Map()
    const run = async (label, n) => {
      for (let i = 0; i < n; i += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, n - i) }, async (_, j) => {
            // The hash tag puts the name in the slot of its group.
            const group = groups[(i + j) % groups.length]
            const name = `{${group}}:${label}-${i + j}`
            const lock = await m.acquire(name)
            assert.ok(lock, `${name} not granted`)
            assert.equal(cluster.keySlot(lock.key), cluster.keySlot(group))
            const before = tokens.get(group) || 0
            assert.ok(lock.fencingToken > 0)
            tokens.set(group, Math.max(before, lock.fencingToken))
            assert.equal(await lock.release(), true)
          }),
        )
      }
      return keysOnMasters()
    }
    // Every acquire and release above resolved: no script failed (a
    // CROSSSLOT error would have rejected it).
    const after20 = await run('a', 20)
    const after500 = await run('b', 500)
    t.diagnostic(`keys on the masters: ${after20} after 20 names, ${after500} after 500 more (${slots.size} slots)`)
    assert.equal(after500, after20, 'the keyspace grew with the number of names')
    const all = counters()
    for (const slot of slots) {
      const name = all.get(slot)
      assert.ok(name, `no counter in slot ${slot}`)
      assert.equal(cluster.keySlot(name), slot)
    }
    // A resource's tokens increase: each next grant takes its slot's next token.
    const group = groups[0]
    const first = await m.acquire(`{${group}}:again`)
    await first.release()
    const second = await m.acquire(`{${group}}:again`)
    await second.release()
    assert.ok(second.fencingToken > first.fencingToken)
    assert.ok(first.fencingToken > tokens.get(group))
  })

  test('an old {K}:fence counter at 1000: the next grant gets a token above it, and the old key is removed', async () => {
    const m = manager()
    const name = uniqueName('old-counter')
    const old = `{${keyOf(name)}}:fence`
    const owner = cluster.slotOwner(keyOf(name))
    assert.equal(cluster.cli(owner, 'SET', old, '1000'), 'OK')
    const lock = await m.acquire(name)
    assert.ok(lock.fencingToken > 1000, `token ${lock.fencingToken}`)
    assert.equal(cluster.cli(owner, 'EXISTS', old), '0')
    await lock.release()
    const next = await m.acquire(name)
    assert.ok(next.fencingToken > lock.fencingToken)
    await next.release()
  })

  test('fair mode: waiters of three managers are served in their order of arrival', async () => {
    const holder = manager()
    const name = uniqueName('fair')
    const lock = await holder.acquire(name)
    const order = []
    const waiters = []
    for (let i = 0; i < 3; i++) {
      const m = manager({ fair: true, retryDelay: 100 })
      waiters.push(
        m.acquire(name, { timeout: 20_000 }).then(async (l) => {
          assert.ok(l, `waiter ${i} got no lock`)
          order.push(i)
          await sleep(50)
          assert.equal(await l.release(), true)
        }),
      )
      await sleep(200) // a defined order of arrival
    }
    const owner = cluster.slotOwner(keyOf(name))
    assert.equal(cluster.cli(owner, 'ZCARD', `{${keyOf(name)}}:queue`), '3')
    assert.equal(await lock.release(), true)
    await within(Promise.all(waiters), 15_000, 'the fair waiters')
    assert.deepEqual(order, [0, 1, 2])
  })

  test('a waiter with retryDelay 10 s is granted within 2 s of the release', async () => {
    const next = await wokenAtRelease(manager(), manager(), uniqueName('wake'))
    assert.equal(await next.release(), true)
  })

  test('evictionPolicy: every master is asked; an evicting one is warned about (warn) or refuses (refuse)', async () => {
    const ports = cluster.masterPorts()
    const evicting = ports[ports.length - 1]
    const other = ports.find((p) => p !== evicting)
    const name = nameServedBy(other, 'evict')
    cluster.cli(evicting, 'CONFIG', 'SET', 'maxmemory', '2mb')
    cluster.cli(evicting, 'CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lfu')
    try {
      const m = manager()
      const warned = []
      m.on('warning', (w) => warned.push(w))
      // The key lives on a safe master: the evicting one is found all the same.
      const lock = await within(m.acquire(name), 15_000, 'acquire (warn)')
      assert.ok(lock)
      await within(
        waitUntil(() => warned.length > 0, { timeoutMs: 10_000, what: 'the warning' }),
        12_000,
        'the warning',
      )
      await lock.release()
      await sleep(200)
      assert.equal(warned.length, 1, JSON.stringify(warned))
      assert.equal(warned[0].code, 'EEVICTION')
      assert.equal(warned[0].policy, 'allkeys-lfu')
      assert.match(warned[0].server, new RegExp(`:${evicting}$`))

      const strict = manager({ evictionPolicy: 'refuse' })
      const err = await within(strict.acquire(name).then(() => null, (e) => e), 15_000, 'acquire (refuse)')
      assert.ok(err instanceof DistLockError, err && err.stack)
      assert.equal(err.code, 'EEVICTION')
      assert.match(err.message, new RegExp(`:${evicting}`))
      assert.equal(valueOf(keyOf(name)), '', 'no lock taken')
    } finally {
      cluster.cli(evicting, 'CONFIG', 'SET', 'maxmemory', '0')
      cluster.cli(evicting, 'CONFIG', 'SET', 'maxmemory-policy', 'noeviction')
    }
    // Safe again: a new manager grants.
    const ok = await within(manager({ evictionPolicy: 'refuse' }).acquire(name), 15_000, 'acquire once safe')
    assert.ok(ok)
    assert.equal(await ok.release(), true)
  })

  test('mutual exclusion: 2 managers x 8 tasks, a non-atomic counter is exact, no overlap', async (t) => {
    const ms = [manager({ retryDelay: 20, ttl: 10_000 }), manager({ retryDelay: 20, ttl: 10_000 })]
    const name = uniqueName('counter')
    const ITERATIONS = 5
    let counter = 0
    let inside = 0
    let overlaps = 0
    let releasedFalse = 0
    const tokens = []
    await within(
      Promise.all(
        ms.flatMap((m) =>
          Array.from({ length: 8 }, async () => {
            for (let i = 0; i < ITERATIONS; i++) {
              const lock = await m.acquire(name)
              assert.ok(lock)
              if (++inside > 1) overlaps++
              tokens.push(lock.fencingToken)
              const value = counter
              await sleep(Math.floor(Math.random() * 3))
              counter = value + 1
              inside--
              if (!(await lock.release())) releasedFalse++
            }
          }),
        ),
      ),
      60_000,
      'the workers',
    )
    const total = 2 * 8 * ITERATIONS
    t.diagnostic(`overlaps ${overlaps}, releases that found the lock gone ${releasedFalse}, counter ${counter}/${total}`)
    assert.equal(overlaps, 0)
    assert.equal(counter, total)
    assert.equal(releasedFalse, 0)
    assert.equal(new Set(tokens).size, total, 'a fencing token given twice')
  })

  test("the slot of a held lock moves to another master: still exclusive during and after, and released", async () => {
    const holder = manager()
    const other = manager()
    const name = uniqueName('migrate')
    const lock = await holder.acquire(name, { ttl: 30_000 })
    const slot = cluster.keySlot(lock.key)
    const from = cluster.slotOwner(lock.key)
    const to = cluster.masterPorts().find((p) => p !== from)
    const checks = async (when) => {
      assert.equal(await within(other.acquire(name, { maxRetries: 0 }), 10_000, `acquire ${when}`), false, `granted twice ${when}`)
      assert.equal(await within(other.isLocked(name), 10_000, `isLocked ${when}`), true, when)
      assert.equal(await within(lock.isHeld(), 10_000, `isHeld ${when}`), true, when)
    }
    await checks('before the move')
    const moved = await cluster.migrateSlot(slot, from, to, { whileMigrating: () => checks('while migrating (ASK)') })
    assert.ok(moved.keys >= 3, 'the lock key, its token and its counter moved') // lock:name, {lock:~x}:token:lock:name, {lock:~x}:fencing
    assert.equal(cluster.slotOwner(lock.key), to)
    assert.equal(cluster.cli(to, 'GET', lock.key), lock.id)
    await checks('after the move (MOVED)')
    await within(lock.extend(30), 10_000, 'extend after the move')
    assert.ok(Number(cluster.cli(to, 'PTTL', lock.key)) > 28_000)
    assert.equal(await within(lock.release(), 10_000, 'release after the move'), true)
    assert.equal(cluster.cli(to, 'EXISTS', lock.key), '0')
    const next = await within(other.acquire(name, { maxRetries: 0 }), 10_000, 'acquire after the release')
    assert.ok(next, 'not free after the release')
    assert.ok(next.fencingToken > lock.fencingToken, 'the counter moved with the slot')
    assert.equal(await next.release(), true)
  })

  test('a master fails over (CLUSTER FAILOVER) while locks are taken: works again within 15 s, no overlap', async (t) => {
    const victim = cluster.masterPorts()[0]
    const replica = cluster.replicaOf(victim)
    assert.ok(replica, 'the master has no replica')
    const holder = manager()
    const heldName = nameServedBy(victim, 'held')
    const held = await holder.acquire(heldName, { ttl: 60_000 })
    assert.ok(held)
    // Contenders on two names of that master, running through the failover.
    const names = [nameServedBy(victim, 'busy'), nameServedBy(victim, 'busy')]
    const work = contenders([manager({ retryDelay: 20 }), manager({ retryDelay: 20 })], names)
    await sleep(500)
    const failover = await cluster.failover(replica)
    const failedOverAt = performance.now()
    t.diagnostic(`failover to ${replica} took ${failover.ms} ms`)
    assert.equal(cluster.slotOwner(keyOf(heldName)), replica)

    // New grants on the promoted master, within a bound.
    const probe = manager()
    await waitUntil(
      async () => {
        const l = await probe.acquire(uniqueName('after-failover'), { maxRetries: 0 })
        if (!l) return false
        assert.equal(await l.release(), true)
        return true
      },
      { timeoutMs: 15_000, intervalMs: 200, what: 'a grant after the failover' },
    )
    // The lock taken before: CLUSTER FAILOVER loses no write.
    await waitUntil(() => held.isHeld(), { timeoutMs: 15_000, intervalMs: 200, what: 'the held lock seen after the failover' })
    assert.equal(await retriedOnReconnect(() => held.release()), true)
    const grantsBefore = work.state.grants.length
    await sleep(1_000)
    const { state } = work
    await work.stop()
    const after = state.grants.filter((g) => g > failedOverAt).length
    t.diagnostic(
      `contenders: ${state.increments} critical sections, ${after} after the failover, ${state.errors.length} errors ` +
        `(${[...new Set(state.errors.map((e) => e.code))].join(', ')}), ${state.releasedFalse} releases found the lock gone`,
    )
    assert.equal(state.overlaps, 0, 'two holders at once')
    assert.equal([...state.counters.values()].reduce((a, b) => a + b, 0), state.increments)
    assert.ok(state.grants.length > grantsBefore, 'no grant in the last second')
    assert.ok(after > 0, 'no grant after the failover')
    for (const err of state.errors) {
      assert.ok(err instanceof DistLockError, `not a DistLockError: ${err && err.stack}`)
      assert.ok(['ECONNECTION', 'EREDIS'].includes(err.code), `${err.code}: ${err.message}`)
    }
  })
})

/** Runs `fn`, retried on a connection error for up to 10 s (a reconnect after a failover). */
async function retriedOnReconnect(fn) {
  const deadline = performance.now() + 10_000
  for (;;) {
    try {
      return await fn()
    } catch (err) {
      if (err.code !== 'ECONNECTION' || performance.now() > deadline) throw err
      await sleep(200)
    }
  }
}

describe('the harness: failover', { skip: SKIP ? false : 'exercised by the library failover test' }, () => {
  test('failover(replica): the replica becomes master of its slots, the old master its replica', async () => {
    const master = cluster.masterPorts()[0]
    const replica = cluster.replicaOf(master)
    const key = keyOf(nameServedBy(master, 'failover'))
    assert.equal(cluster.cli(master, 'SET', key, 'kept'), 'OK')
    const result = await cluster.failover(replica)
    assert.equal(result.promoted, replica)
    assert.equal(result.demoted, master)
    assert.equal(cluster.node(replica).role, 'master')
    assert.equal(cluster.node(master).role, 'replica')
    assert.equal(cluster.slotOwner(key), replica)
    assert.equal(cluster.cli(replica, 'GET', key), 'kept')
    assert.equal(cluster.replicaOf(replica), master)
  })
})

