'use strict'

// Several processes: mutual exclusion across them, and the process lifetime
// (the native side must not keep a process alive, nor let it die early).

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { startRedis, freePort } = require('./helpers/redis-server.js')
const { root, sleep, managerPool, spawnNode } = require('./helpers/util.js')

const worker = path.join(__dirname, 'fixtures', 'counter-worker.js')

let server
let tmpDir
const managers = managerPool()
const children = new Set()

before(async () => {
  server = await startRedis()
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-proc-'))
})

after(async () => {
  managers.closeAll()
  for (const child of children) child.kill('SIGKILL')
  await server.stop()
  fs.rmSync(tmpDir, { recursive: true, force: true })
})

function manager(options) {
  return managers.open(server.url, options)
}

/** `node args...`: see spawnNode. */
function run(args, { timeoutMs, env } = {}) {
  return spawnNode(args, { children, timeoutMs, env })
}

const requireLib = `const distLock = require(${JSON.stringify(root)});`

test('mutual exclusion across 4 processes x 4 tasks: no increment is lost', async (t) => {
  const processes = 4
  const tasks = 4
  const iterations = 25
  const expected = processes * tasks * iterations
  const counterFile = path.join(tmpDir, 'counter')
  fs.writeFileSync(counterFile, '0')

  const t0 = performance.now()
  const runs = Array.from({ length: processes }, () =>
    run([worker, server.url, counterFile, 'shared-counter', tasks, iterations], { timeoutMs: 40_000 }).exited,
  )
  const results = await Promise.all(runs)
  const ms = performance.now() - t0
  const stats = results.map((r) => {
    assert.equal(r.code, 0, `worker failed: ${r.stderr}`)
    return JSON.parse(r.stdout)
  })
  for (const s of stats) {
    assert.equal(s.increments, tasks * iterations)
    assert.equal(s.releasedFalse, 0, 'a lock was lost before its release')
  }
  assert.equal(Number(fs.readFileSync(counterFile, 'utf8')), expected)
  assert.equal(server.cli('EXISTS', 'lock:shared-counter'), '0')
  t.diagnostic(
    `${expected} locked increments in ${ms.toFixed(0)} ms; max attempts for one lock: ` +
      Math.max(...stats.map((s) => s.maxAttempts)),
  )
})

test('control: the same workload without the lock loses increments', async () => {
  // Shows that the test above can fail: unprotected, the read-modify-write races.
  const processes = 4
  const tasks = 4
  const iterations = 10
  const counterFile = path.join(tmpDir, 'counter-nolock')
  fs.writeFileSync(counterFile, '0')
  const results = await Promise.all(
    Array.from({ length: processes }, () =>
      run([worker, server.url, counterFile, 'unused', tasks, iterations, 'nolock'], { timeoutMs: 20_000 }).exited,
    ),
  )
  for (const r of results) assert.equal(r.code, 0, r.stderr)
  assert.ok(Number(fs.readFileSync(counterFile, 'utf8')) < processes * tasks * iterations)
})

test('a process that acquires and releases without close() exits by itself', async () => {
  const script = `${requireLib}
    (async () => {
      const m = distLock(process.argv[1])
      const lock = await m.acquire('exit-no-close')
      console.log('released', await lock.release())
    })()`
  const r = await run(['-e', script, server.url], { timeoutMs: 10_000 }).exited
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'released true')
})

test('a process whose acquire failed (unreachable Redis, no close()) exits by itself', async () => {
  const script = `${requireLib}
    (async () => {
      const m = distLock(process.argv[1], { connectTimeout: 500 })
      await m.acquire('unreachable').catch((err) => console.log(err.code))
    })()`
  const r = await run(['-e', script, `redis://127.0.0.1:${await freePort()}`], { timeoutMs: 10_000 }).exited
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'ECONNECTION')
})

test('a pending acquire keeps its process alive until the lock is granted', async () => {
  const holder = manager()
  const held = await holder.acquire('exit-pending')
  assert.ok(held)
  const script = `${requireLib}
    (async () => {
      const m = distLock(process.argv[1], { maxRetries: -1, retryDelay: 20 })
      const pending = m.acquire('exit-pending')
      console.log('waiting')
      const lock = await pending
      console.log('granted', await lock.release())
    })()`
  const child = run(['-e', script, server.url], { timeoutMs: 15_000 })
  await child.waitFor('waiting')
  await sleep(1000)
  assert.equal(child.child.exitCode, null, 'the child exited while its acquire was pending')
  assert.equal(child.child.signalCode, null)
  assert.equal(await held.release(), true)
  const r = await child.exited
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout, 'waiting\ngranted true\n')
})

test('a fire-and-forget release on a dead Redis never crashes the process', async () => {
  const script = `${requireLib}
    (async () => {
      const m = distLock(process.argv[1], { connectTimeout: 500, commandTimeout: 1000 })
      const lock = await m.acquire('fire-and-forget')
      console.log('acquired')
      process.stdin.once('data', () => {
        process.stdin.destroy()
        lock.release() // neither awaited nor given a callback
        setTimeout(() => console.log('still alive'), 3000)
      })
    })()`
  const child = run(['-e', script, server.url], { timeoutMs: 15_000 })
  await child.waitFor('acquired')
  await server.stop()
  try {
    child.child.stdin.end('go\n')
    const r = await child.exited
    assert.equal(r.code, 0, `exit ${r.code} ${r.signal}; stderr: ${r.stderr}`)
    assert.equal(r.stdout, 'acquired\nstill alive\n')
    assert.doesNotMatch(r.stderr, /unhandled|Error/i)
  } finally {
    await server.start()
  }
})
