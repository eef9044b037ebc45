'use strict'

// evictionPolicy: a server that may evict lock keys (maxmemory set and a
// maxmemory-policy other than noeviction) is found through INFO memory, once
// per connection. 'warn' (default) emits one 'warning' event per server and
// connection and one process warning; 'refuse' rejects acquires with
// EEVICTION and takes no lock; 'ignore' sends no INFO.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const Redis = require('ioredis')
const distLock = require('..')
const { startRedis } = require('./helpers/redis-server.js')
const { managerPool, within, uniqueNames, sleep, commandCalls, execNode } = require('./helpers/util.js')
const { EvictionError, DistLockError, InvalidArgumentError } = distLock

const EVICTING = ['--maxmemory', '2mb', '--maxmemory-policy', 'allkeys-lru']
const options = { connectTimeout: 2000, commandTimeout: 3000 }

/** The 'warning' events of manager `m`, and a promise of the next one. */
function warnings(m) {
  const seen = []
  let wake = () => {}
  m.on('warning', (w) => {
    seen.push(w)
    wake()
  })
  const next = (count = 1) =>
    new Promise((resolve) => {
      const check = () => seen.length >= count && resolve(seen[count - 1])
      wake = check
      check()
    })
  return { seen, next }
}

/** INFO calls the server has answered since its stats were last reset. */
async function infoCalls(admin) {
  return commandCalls(await admin.info('commandstats')).info ?? 0
}

describe('evictionPolicy', () => {
  let evicting
  let safe
  let evictingAdmin
  let safeAdmin
  const managers = managerPool()
  const name = uniqueNames('eviction')

  before(async () => {
    ;[evicting, safe] = await Promise.all([startRedis({ args: EVICTING }), startRedis()])
    evictingAdmin = new Redis(evicting.port, '127.0.0.1')
    safeAdmin = new Redis(safe.port, '127.0.0.1')
  })

  after(async () => {
    await managers.closeAll()
    evictingAdmin?.disconnect()
    safeAdmin?.disconnect()
    await Promise.all([evicting?.stop(), safe?.stop()])
  })

  test("'warn' (the default): one 'warning' event per server and connection, one process warning, the lock granted", async () => {
    const processWarnings = []
    const onWarning = (w) => {
      if (w.code === 'DIST_LOCK_EVICTION') processWarnings.push(w)
    }
    process.on('warning', onWarning)
    try {
      const m = managers.open(evicting.url, options)
      assert.equal(m.options.evictionPolicy, 'warn')
      const w = warnings(m)
      const lock = await within(m.acquire(name('warn')), 10_000, 'acquire on an evicting server')
      assert.ok(lock, "'warn' still grants the lock")
      const warning = await within(w.next(), 5_000, "the 'warning' event")
      assert.equal(warning.code, 'EEVICTION')
      assert.equal(warning.policy, 'allkeys-lru')
      assert.equal(warning.maxmemory, 2 * 1024 * 1024)
      assert.equal(warning.server, `127.0.0.1:${evicting.port}`)
      assert.match(warning.message, /evict/)
      assert.match(warning.message, /noeviction/, 'says how to fix it')
      assert.match(warning.message, /evictionPolicy/, 'names the option')
      // Further calls on the same connection are not checked again.
      for (let i = 0; i < 5; i += 1) await (await m.acquire(name('warn-again'))).release()
      await lock.release()
      // A second manager (its own connection) warns on its own, but the
      // process warning was given once.
      const m2 = managers.open(evicting.url, options)
      const w2 = warnings(m2)
      await (await m2.acquire(name('warn-second'))).release()
      await within(w2.next(), 5_000, "the second manager's 'warning' event")
      await sleep(300)
      assert.equal(w.seen.length, 1, 'one warning per server and connection')
      assert.equal(w2.seen.length, 1)
      assert.equal(processWarnings.length, 1, 'one process warning')
      assert.equal(processWarnings[0].name, 'DistLockWarning')
      assert.match(processWarnings[0].message, /evict/)
    } finally {
      process.off('warning', onWarning)
    }
  })

  test('the process warning is printed once on stderr, and the DEBUG trace says it too', async () => {
    const script = `
      const distLock = require('.')
      async function main() {
        for (let i = 0; i < 2; i += 1) {
          const m = distLock(${JSON.stringify(evicting.url)})
          const warned = new Promise((resolve) => m.once('warning', resolve))
          await (await m.acquire('eviction-child-' + i)).release()
          await warned
          await m.close()
        }
        console.log('done')
      }
      main().catch((err) => { console.error(err); process.exit(1) })
    `
    const run = await execNode(['-e', script], 20_000)
    assert.equal(run.code, 0, run.stderr)
    assert.match(run.stdout, /done/)
    const printed = run.stderr.match(/DIST_LOCK_EVICTION/g) ?? []
    assert.equal(printed.length, 1, `stderr: ${run.stderr}`)
    assert.match(run.stderr, /DistLockWarning/)

    const traced = await new Promise((resolve) => {
      const { execFile } = require('node:child_process')
      execFile(
        process.execPath,
        ['-e', script],
        { cwd: require('node:path').join(__dirname, '..'), env: { ...process.env, DEBUG: 'dist-lock' }, timeout: 20_000 },
        (err, stdout, stderr) => resolve({ code: err ? err.code : 0, stderr }),
      )
    })
    assert.equal(traced.code, 0, traced.stderr)
    assert.match(traced.stderr, /dist-lock warning .*code=EEVICTION .*policy=allkeys-lru/)
  })

  test("'refuse': acquires reject with EvictionError (EEVICTION) and leave no key", async () => {
    await evictingAdmin.flushall()
    const m = managers.open(evicting.url, { ...options, evictionPolicy: 'refuse' })
    const w = warnings(m)
    const resource = name('refuse')
    for (let i = 0; i < 2; i += 1) {
      const err = await within(m.acquire(resource).then(() => null, (e) => e), 10_000, 'refused acquire')
      assert.ok(err instanceof EvictionError, `expected EvictionError, got ${err && err.stack}`)
      assert.ok(err instanceof DistLockError)
      assert.equal(err.code, 'EEVICTION')
      assert.match(err.message, /allkeys-lru/)
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${evicting.port}`))
    }
    // The callback form gets it too.
    const cbErr = await new Promise((resolve) => m.acquire(resource, (e) => resolve(e)))
    assert.equal(cbErr.code, 'EEVICTION')
    assert.equal(await evictingAdmin.exists(`lock:${resource}`), 0)
    assert.equal(await evictingAdmin.dbsize(), 0, 'no key at all (no fencing counter either)')
    assert.equal(w.seen.length, 0, "'refuse' rejects instead of warning")
  })

  test("'ignore': no INFO is sent, and nothing is reported", async () => {
    await evictingAdmin.config('RESETSTAT')
    const m = managers.open(evicting.url, { ...options, evictionPolicy: 'ignore' })
    const w = warnings(m)
    await (await m.acquire(name('ignore'))).release()
    await sleep(300)
    assert.equal(await infoCalls(evictingAdmin), 0, 'no INFO sent')
    assert.equal(w.seen.length, 0)
    // The same with 'warn' does send it (so the count above can fail).
    const warn = managers.open(evicting.url, options)
    await (await warn.acquire(name('ignore-control'))).release()
    assert.equal(await infoCalls(evictingAdmin), 2, 'the INFO commandstats above, and the check')
  })

  test('noeviction, or maxmemory 0, is safe: no warning and no refusal', async () => {
    for (const settings of [
      { maxmemory: '2mb', policy: 'noeviction' },
      { maxmemory: '0', policy: 'allkeys-lru' },
    ]) {
      await safeAdmin.config('SET', 'maxmemory', settings.maxmemory)
      await safeAdmin.config('SET', 'maxmemory-policy', settings.policy)
      await safeAdmin.config('RESETSTAT')
      const m = managers.open(safe.url, options)
      const w = warnings(m)
      const strict = managers.open(safe.url, { ...options, evictionPolicy: 'refuse' })
      await (await m.acquire(name('safe'))).release()
      await (await strict.acquire(name('safe-strict'))).release()
      await sleep(300)
      assert.equal(await infoCalls(safeAdmin), 2, 'both checked')
      assert.equal(w.seen.length, 0, `warned with ${JSON.stringify(settings)}`)
      await managers.close(m, strict)
    }
    await safeAdmin.config('SET', 'maxmemory', '0')
    await safeAdmin.config('SET', 'maxmemory-policy', 'noeviction')
  })

  test('a policy changed to an evicting one is found on the next connection (after CLIENT KILL)', async () => {
    const m = managers.open(safe.url, options)
    const strict = managers.open(safe.url, { ...options, evictionPolicy: 'refuse' })
    const w = warnings(m)
    await (await m.acquire(name('change'))).release()
    await (await strict.acquire(name('change-strict'))).release()
    await safeAdmin.config('SET', 'maxmemory', '2mb')
    await safeAdmin.config('SET', 'maxmemory-policy', 'volatile-lru')
    try {
      // Same connection: checked already, not again (cached per connection).
      await (await m.acquire(name('change-same'))).release()
      await sleep(200)
      assert.equal(w.seen.length, 0)
      // The managers' connections are killed: their next acquire runs on a
      // new one, which is checked.
      await safeAdmin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
      const lock = await within(m.acquire(name('change-new')), 10_000, 'acquire on the new connection')
      assert.ok(lock)
      const warning = await within(w.next(), 5_000, 'warning on the new connection')
      assert.equal(warning.policy, 'volatile-lru')
      await lock.release()
      const err = await within(strict.acquire(name('change-refused')).then(() => null, (e) => e), 10_000, 'refuse')
      assert.equal(err?.code, 'EEVICTION', err?.stack)
      assert.equal(await safeAdmin.exists(`lock:${name('change-refused')}`), 0)
    } finally {
      await safeAdmin.config('SET', 'maxmemory', '0')
      await safeAdmin.config('SET', 'maxmemory-policy', 'noeviction')
    }
  })

  test('INFO denied by ACL: refuse says how to grant +info or opt out; warn warns that it could not check', async () => {
    await evictingAdmin.call('ACL', 'SETUSER', 'noinfo', 'on', '>pw', '~*', '&*', '+@all', '-info')
    const url = `redis://noinfo:pw@127.0.0.1:${evicting.port}`
    const strict = managers.open(url, { ...options, evictionPolicy: 'refuse' })
    const resource = name('noinfo')
    const err = await within(strict.acquire(resource).then(() => null, (e) => e), 10_000, 'refused')
    assert.equal(err?.code, 'EEVICTION', err?.stack)
    assert.match(err.message, /\+info/)
    assert.match(err.message, /evictionPolicy/)
    assert.equal(await evictingAdmin.exists(`lock:${resource}`), 0)

    const m = managers.open(url, options)
    const w = warnings(m)
    const lock = await within(m.acquire(name('noinfo-warn')), 10_000, 'acquire')
    assert.ok(lock)
    const warning = await within(w.next(), 5_000, 'could-not-check warning')
    assert.equal(warning.code, 'EEVICTION')
    assert.equal(warning.policy, null)
    assert.match(warning.message, /could not check/)
    assert.match(warning.message, /\+info/)
    await lock.release()
  })

  test('INFO disabled on the server (rename-command): refuse refuses, warn warns that it could not check', async () => {
    const noInfo = await startRedis({ args: ['--rename-command', 'INFO', ''] })
    try {
      const strict = managers.open(noInfo.url, { ...options, evictionPolicy: 'refuse' })
      const err = await within(strict.acquire(name('renamed')).then(() => null, (e) => e), 10_000, 'refused')
      assert.equal(err?.code, 'EEVICTION', err?.stack)
      assert.match(err.message, /could not check/)
      const m = managers.open(noInfo.url, options)
      const w = warnings(m)
      await (await within(m.acquire(name('renamed-warn')), 10_000, 'acquire')).release()
      const warning = await within(w.next(), 5_000, 'could-not-check warning')
      assert.equal(warning.policy, null)
      await managers.close(strict, m)
    } finally {
      await noInfo.stop()
    }
  })

  test('bad values: EINVALIDARG naming evictionPolicy; not a per-call option', async () => {
    for (const bad of ['bogus', '', 'WARN']) {
      assert.throws(
        () => distLock(safe.url, { evictionPolicy: bad }),
        (err) => err instanceof InvalidArgumentError && err.code === 'EINVALIDARG' && /"evictionPolicy"/.test(err.message),
      )
    }
    for (const bad of [1, true, null, {}]) {
      assert.throws(
        () => distLock(safe.url, { evictionPolicy: bad }),
        (err) => err.code === 'EINVALIDARG' && /evictionPolicy/.test(err.message),
      )
    }
    const m = managers.open(safe.url, { evictionPolicy: 'ignore' })
    assert.equal(m.options.evictionPolicy, 'ignore')
    await assert.rejects(m.acquire(name('percall'), { evictionPolicy: 'ignore' }), (err) => err.code === 'EINVALIDARG')
  })
})
