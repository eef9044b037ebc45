'use strict'

// Fencing tokens: every grant carries a token that strictly increases per
// resource, across processes and managers. They come from one counter per
// keyPrefix, `{<keyPrefix>}:fencing`, that the acquire script increments
// with the SET, so the keys left behind do not grow with the number of
// resource names; the counter of an earlier version (`{<lockKey>}:fence`) is
// honoured once and removed.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { startRedis } = require('./helpers/redis-server.js')
const { managerPool, uniqueNames, spawnNode } = require('./helpers/util.js')

const worker = path.join(__dirname, 'fixtures', 'fencing-worker.js')

let server
const managers = managerPool()
const children = new Set()

before(async () => {
  server = await startRedis()
})

after(async () => {
  managers.closeAll()
  for (const child of children) child.kill('SIGKILL')
  await server.stop()
})

function manager(options) {
  return managers.open(server.url, options)
}

/** A resource name not used by any other test of this file. */
const uniqueName = uniqueNames('fencing')

/** The fencing counter of the default keyPrefix `lock:`. */
const COUNTER = '{lock:}:fencing'

/** Spawns a fencing worker; `exited` resolves its output, or rejects on failure. */
function startWorker(resourceName, grants, timeoutMs = 30_000) {
  const { child, exited, waitFor } = spawnNode([worker, server.url, resourceName, String(grants)], {
    children,
    timeoutMs,
    what: 'worker',
  })
  const ready = waitFor('ready\n')
  const go = () => child.stdin.end('go\n')
  return { ready, go, exited }
}

describe('fencing tokens across processes', () => {
  test('3 processes x 200 grants on one key: tokens strictly increase in grant order, intervals never overlap', async (t) => {
    const name = uniqueName('procs')
    const PROCS = 3
    const GRANTS = 200
    const workers = Array.from({ length: PROCS }, () => startWorker(name, GRANTS))
    await Promise.all(workers.map((w) => w.ready))
    for (const w of workers) w.go()
    const results = await Promise.all(workers.map((w) => w.exited))

    const all = []
    results.forEach((r, index) => {
      assert.equal(r.code, 0, `worker ${index} failed: ${r.stderr}`)
      const { grants } = JSON.parse(r.stdout.trim().split('\n').pop())
      assert.equal(grants.length, GRANTS)
      for (const [token, acquiredAt, releasedAt, attempt] of grants) {
        all.push({ worker: index, token, acquiredAt, releasedAt, attempt })
      }
    })
    assert.equal(all.length, PROCS * GRANTS)

    // Every token is a positive safe integer, and all are distinct.
    for (const g of all) assert.ok(Number.isSafeInteger(g.token) && g.token > 0, `bad token ${g.token}`)
    assert.equal(new Set(all.map((g) => g.token)).size, all.length, 'fencing tokens are not all distinct')

    // The workers really contended: some grants needed retries, and the
    // holder changed between processes many times.
    all.sort((a, b) => a.acquiredAt - b.acquiredAt)
    const switches = all.filter((g, i) => i > 0 && g.worker !== all[i - 1].worker).length
    assert.ok(all.some((g) => g.attempt > 1), 'no grant ever waited: the workers did not contend')
    assert.ok(switches >= 100, `the lock changed hands between processes only ${switches} times`)

    // In grant order (common clock), tokens strictly increase and each
    // grant starts after the previous one was released.
    let minGap = Infinity
    for (let i = 1; i < all.length; i++) {
      const prev = all[i - 1]
      const cur = all[i]
      assert.ok(
        cur.token > prev.token,
        `token ${cur.token} (worker ${cur.worker}) granted after token ${prev.token} (worker ${prev.worker})`,
      )
      const gap = cur.acquiredAt - prev.releasedAt
      minGap = Math.min(minGap, gap)
      assert.ok(
        gap >= 0,
        `grant ${cur.token} (worker ${cur.worker}) at ${cur.acquiredAt} overlaps grant ${prev.token} ` +
          `(worker ${prev.worker}) released at ${prev.releasedAt} (${gap.toFixed(3)} ms)`,
      )
    }

    // The counter key holds the last token; the lock key is gone.
    const last = all[all.length - 1].token
    assert.equal(server.cli('GET', COUNTER), String(last))
    assert.equal(Math.max(...all.map((g) => g.token)), last)
    assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
    // Nobody else took locks meanwhile: tokens are issued one by one.
    assert.equal(last - all[0].token, PROCS * GRANTS - 1)
    t.diagnostic(`${all.length} grants, ${switches} hand-overs, min gap release->next grant ${minGap.toFixed(3)} ms`)
  })
})

describe('fencing tokens in one process', () => {
  test('a grant carries a numeric fencingToken; the counter key {lock:}:fencing holds it', async () => {
    const m = manager()
    const name = uniqueName('first')
    const lock = await m.acquire(name, { ttl: 20_000 })
    assert.equal(typeof lock.fencingToken, 'number')
    assert.ok(lock.fencingToken > 0)
    assert.equal(server.cli('GET', COUNTER), String(lock.fencingToken))
    assert.equal(server.cli('TYPE', COUNTER), 'string')
    assert.equal(server.cli('PTTL', COUNTER), '-1')
    // The lock key itself keeps the 1.0 format: the plain id. Its token is
    // kept beside it while it is held, with the same ttl.
    assert.equal(server.cli('GET', `lock:${name}`), lock.id)
    const tokenKey = `{lock:}:token:${lock.key}`
    assert.equal(server.cli('GET', tokenKey), String(lock.fencingToken))
    assert.ok(Number(server.cli('PTTL', tokenKey)) > 10_000)
    assert.equal(await lock.release(), true)
    // Release deletes the token's key, and does not reset the counter.
    assert.equal(server.cli('EXISTS', tokenKey), '0')
    assert.equal(server.cli('GET', COUNTER), String(lock.fencingToken))
  })

  test('N distinct names locked and released leave the same keys for N = 20 and N = 2000', async (t) => {
    const m = manager()
    const run = async (label, n) => {
      for (let i = 0; i < n; i += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, n - i) }, async (_, j) => {
            const lock = await m.acquire(uniqueName(`${label}-${i + j}`))
            assert.ok(lock)
            assert.equal(await lock.release(), true)
          }),
        )
      }
      return Number(server.cli('DBSIZE'))
    }
    const before = Number(server.cli('DBSIZE'))
    const after20 = await run('n20', 20)
    const after2000 = await run('n2000', 2000)
    t.diagnostic(`keys: ${before} before, ${after20} after 20 names, ${after2000} after 2000 more`)
    assert.equal(after2000, after20, 'the keyspace grew with the number of names')
    assert.ok(after20 <= before + 1, `${after20 - before} keys added by 20 names`)
    assert.equal(server.cli('KEYS', '*fencing-n2000*'), '')
  })

  test('tokens increase across managers with different options (same keyPrefix)', async () => {
    const name = uniqueName('managers')
    const ms = [
      manager(),
      manager({ ttl: 1_000, retryDelay: 5 }),
      manager({ ttl: 60_000, maxRetries: 3 }),
      manager({ autoExtend: true, ttl: 2_000 }),
    ]
    const tokens = []
    for (let round = 0; round < 5; round++) {
      for (const m of ms) {
        const lock = await m.acquire(name)
        assert.ok(lock, 'acquire on a free key gave no lock')
        tokens.push(lock.fencingToken)
        assert.equal(await lock.release(), true)
      }
    }
    for (let i = 1; i < tokens.length; i++) {
      assert.ok(tokens[i] > tokens[i - 1], `tokens not increasing: ${tokens.join(', ')}`)
    }
    assert.equal(server.cli('GET', COUNTER), String(tokens[tokens.length - 1]))
  })

  test('a per-call ttl changes nothing to the token sequence', async () => {
    const m = manager()
    const name = uniqueName('percall')
    const a = await m.acquire(name, { ttl: 500 })
    await a.release()
    const b = await m.acquire(name, { ttl: 20_000, maxRetries: 0 })
    await b.release()
    assert.ok(b.fencingToken > a.fencingToken)
    assert.equal(server.cli('GET', COUNTER), String(b.fencingToken))
  })

  test('a grant after an expiry (no release) still gets a larger token', async () => {
    const m = manager()
    const name = uniqueName('expiry')
    const a = await m.acquire(name, { ttl: 100 })
    const b = await m.acquire(name, { retryDelay: 10 }) // waits out the expiry
    assert.ok(b.fencingToken > a.fencingToken, `${b.fencingToken} after ${a.fencingToken}`)
    assert.equal(await a.release(), false)
    await b.release()
  })

  test('the resources of a prefix share one counter; a refused attempt does not move it', async () => {
    const m = manager()
    const x = uniqueName('own-x')
    const y = uniqueName('own-y')
    const lx = await m.acquire(x)
    const refused = await m.acquire(x, { maxRetries: 2, retryDelay: 5 })
    assert.equal(refused, false)
    assert.equal(server.cli('GET', COUNTER), String(lx.fencingToken))
    const ly = await m.acquire(y)
    assert.equal(ly.fencingToken, lx.fencingToken + 1, 'the next grant of any resource takes the next token')
    assert.equal(server.cli('GET', COUNTER), String(ly.fencingToken))
    assert.equal(server.cli('EXISTS', `{lock:${x}}:fence`, `{lock:${y}}:fence`), '0', 'a per-resource counter')
    await lx.release()
    await ly.release()
  })

  test('concurrent acquires of one key in one process get distinct increasing tokens', async () => {
    const m = manager({ retryDelay: 2 })
    const name = uniqueName('concurrent')
    const tokens = []
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        for (let i = 0; i < 5; i++) {
          const lock = await m.acquire(name)
          tokens.push(lock.fencingToken)
          await lock.release()
        }
      }),
    )
    // Pushed while held, so in grant order.
    for (let i = 1; i < tokens.length; i++) assert.ok(tokens[i] > tokens[i - 1], tokens.join(','))
    assert.equal(new Set(tokens).size, 50)
  })

  test('the counter of a prefix with braces: the prefix without its "}" as the counter\'s tag', async () => {
    const m = manager({ keyPrefix: 'lock:{tenant}:' })
    const name = uniqueName('tag')
    const lock = await m.acquire(name)
    assert.equal(lock.key, `lock:{tenant}:${name}`)
    assert.equal(server.cli('GET', '{lock:{tenant:}:fencing'), String(lock.fencingToken))
    await lock.release()
  })

  test('the counter follows the prefix: different keyPrefix, different counter', async () => {
    const name = uniqueName('prefix')
    const a = await manager({ keyPrefix: 'pa:' }).acquire(name)
    const b = await manager({ keyPrefix: 'pb:' }).acquire(name)
    assert.equal(a.fencingToken, 1)
    assert.equal(b.fencingToken, 1)
    assert.equal(server.cli('GET', '{pa:}:fencing'), '1')
    assert.equal(server.cli('GET', '{pb:}:fencing'), '1')
    await a.release()
    await b.release()
  })

  test('with an empty keyPrefix, the resource names that are counter keys are refused', async () => {
    const m = manager({ keyPrefix: '' })
    for (const name of ['{}:fencing', '{~00a1f}:fencing', '{}:token:x']) {
      await assert.rejects(m.acquire(name), (err) => err.code === 'EINVALIDARG' && /resourceName/.test(err.message))
    }
    const lock = await m.acquire(uniqueName('empty-prefix'))
    assert.equal(server.cli('GET', '{}:fencing'), String(lock.fencingToken))
    await lock.release()
  })
})

describe('a 1.0 process on the same keys', () => {
  test('a plain SET NX PX by a 1.0 process blocks acquire and does not break tokens', async () => {
    const m = manager()
    const name = uniqueName('old')
    const key = `lock:${name}`
    const fence = COUNTER

    const first = await m.acquire(name)
    assert.equal(await first.release(), true)
    const before = first.fencingToken
    assert.equal(server.cli('GET', fence), String(before))

    // The old process takes the lock the 1.0 way.
    assert.equal(server.cli('SET', key, 'old-process-id', 'NX', 'PX', '10000'), 'OK')
    assert.equal(await m.acquire(name, { maxRetries: 0 }), false)
    assert.equal(await m.acquire(name, { maxRetries: 2, retryDelay: 10 }), false)
    assert.equal(await m.isLocked(name), true)
    assert.equal(server.cli('GET', key), 'old-process-id', 'the old process\'s lock was changed')
    assert.equal(server.cli('GET', fence), String(before), 'a refused attempt moved the counter')

    // A waiting acquire is granted once the old process releases.
    const waiting = m.acquire(name, { retryDelay: 10 })
    setTimeout(() => server.cli('DEL', key), 150)
    const next = await waiting
    assert.ok(next, 'no lock after the old process released')
    assert.ok(next.fencingToken > before, `token ${next.fencingToken} not above ${before}`)
    assert.equal(server.cli('GET', fence), String(next.fencingToken))

    // And our lock blocks the old process.
    assert.equal(server.cli('SET', key, 'old-process-id', 'NX', 'PX', '10000'), '')
    await next.release()
    const after = await m.acquire(name)
    assert.ok(after.fencingToken > next.fencingToken)
    await after.release()
  })

})

describe('the per-resource counters of earlier versions', () => {
  test('an old {K}:fence at 1000: the next grant gets a token above 1000 and the old key is removed', async () => {
    // A prefix of its own: its counter starts below 1000.
    const m = manager({ keyPrefix: 'migrate:' })
    const name = uniqueName('old-counter')
    const old = `{migrate:${name}}:fence`
    server.cli('SET', old, '1000')
    const lock = await m.acquire(name)
    assert.equal(lock.fencingToken, 1001)
    assert.equal(server.cli('EXISTS', old), '0', 'the old counter is still there')
    assert.equal(server.cli('GET', '{migrate:}:fencing'), '1001')
    await lock.release()
    const next = await m.acquire(name)
    assert.equal(next.fencingToken, 1002)
    await next.release()
  })

  test('fair mode honours the old counter too, and a lower old counter does not lower the shared one', async () => {
    const m = manager({ fair: true })
    const a = uniqueName('old-fair')
    const b = uniqueName('old-low')
    const base = Number(server.cli('GET', COUNTER))
    server.cli('SET', `{lock:${a}}:fence`, String(base + 500))
    server.cli('SET', `{lock:${b}}:fence`, '3')
    const la = await m.acquire(a)
    assert.equal(la.fencingToken, base + 501)
    await la.release()
    const lb = await m.acquire(b)
    assert.equal(lb.fencingToken, base + 502)
    await lb.release()
    assert.equal(server.cli('EXISTS', `{lock:${a}}:fence`, `{lock:${b}}:fence`), '0')
  })

  test('an old counter already at a high value: tokens continue from it', async () => {
    const m = manager()
    const name = uniqueName('high')
    const big = 2 ** 52
    server.cli('SET', `{lock:${name}}:fence`, String(big))
    const lock = await m.acquire(name)
    assert.equal(lock.fencingToken, big + 1)
    await lock.release()
    const other = await m.acquire(uniqueName('after-high'))
    assert.equal(other.fencingToken, big + 2, 'the shared counter continues from there')
    await other.release()
  })
})
