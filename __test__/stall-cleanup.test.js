'use strict'

// Acquires that time out on a stalled server (DEBUG SLEEP, CLIENT PAUSE past
// commandTimeout) reject with ECONNECTION, but Redis runs their attempts when
// it wakes. The README promises that nothing is left behind: once the server
// answers again, each such attempt's lock (and fair-queue entry) is released,
// owner-checked, so another owner's lock is never touched; a script that got
// the error still ends on its own.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const net = require('node:net')
const { startRedis } = require('./helpers/redis-server.js')
const { sleep, managerPool, uniqueNames, spawnNode } = require('./helpers/util.js')

const DEBUG = ['--enable-debug-command', 'yes']
const servers = []
const managers = managerPool()
const children = new Set()
const uniqueName = uniqueNames('stall')

before(async () => {
  for (let i = 0; i < 3; i++) servers.push(await startRedis({ args: DEBUG }))
})

after(async () => {
  managers.closeAll()
  for (const child of children) child.kill('SIGKILL')
  for (const server of servers) await server.stop()
})

/**
 * Stalls `server` for `ms` from a connection of its own: `DEBUG SLEEP`, or
 * `CLIENT PAUSE ms ALL`. Resolves once the stall has begun, with a promise
 * that resolves when it is over.
 */
async function stall(server, ms, how = 'sleep') {
  const socket = net.connect(server.port, '127.0.0.1')
  socket.on('error', () => {})
  await new Promise((resolve) => socket.once('connect', resolve))
  const answered = new Promise((resolve) => socket.once('data', resolve))
  if (how === 'sleep') {
    socket.write(`DEBUG SLEEP ${ms / 1000}\r\n`)
    await sleep(100) // the server reads it at once and sleeps
    const over = answered.then(() => socket.destroy())
    return { over }
  }
  socket.write(`CLIENT PAUSE ${ms} ALL\r\n`)
  await answered
  socket.destroy()
  return { over: sleep(ms) }
}

/** Polls `check()` until it returns true, for at most `ms`; returns whether it did. */
async function eventually(check, ms) {
  const t0 = performance.now()
  for (;;) {
    if (check()) return true
    if (performance.now() - t0 > ms) return false
    await sleep(50)
  }
}

/** Starts `acquire` of every name; resolves with { name, err, lock, ms } each. */
function acquireAll(m, names) {
  return Promise.all(
    names.map(async (name) => {
      const t0 = performance.now()
      try {
        return { name, lock: await m.acquire(name), ms: performance.now() - t0 }
      } catch (err) {
        return { name, err, ms: performance.now() - t0 }
      }
    }),
  )
}

function assertTimedOut(outcomes) {
  for (const o of outcomes) {
    assert.ok(o.err, `"${o.name}" was not refused during the stall (${o.lock})`)
    assert.equal(o.err.code, 'ECONNECTION', o.err.stack)
    // The rejection comes at commandTimeout, not after the cleanup.
    assert.ok(o.ms < 2_500, `"${o.name}" rejected after ${o.ms.toFixed(0)} ms`)
  }
}

test('plain: acquires that timed out during DEBUG SLEEP leave no key once Redis wakes; another owner keeps its lock', async (t) => {
  const [server] = servers
  const m = managers.open(server.url, { commandTimeout: 1_000 })
  const owner = managers.open(server.url, { ttl: 60_000 })
  assert.equal(await (await m.acquire(uniqueName('warm'))).release(), true)
  const ownedName = uniqueName('owned')
  const owned = await owner.acquire(ownedName)
  const names = Array.from({ length: 10 }, (_, i) => uniqueName(`plain-${i}`))

  const { over } = await stall(server, 3_000)
  const outcomes = await acquireAll(m, [...names, ownedName])
  assertTimedOut(outcomes)
  await over

  const gone = await eventually(() => names.every((n) => server.cli('EXISTS', `lock:${n}`) === '0'), 10_000)
  const left = names.filter((n) => server.cli('EXISTS', `lock:${n}`) === '1')
  assert.ok(gone, `${left.length} of ${names.length} keys still held after the server woke: ${left}`)
  assert.equal(server.cli('GET', owned.key), owned.id, "another owner's lock was touched")
  assert.equal(await owned.release(), true)
  t.diagnostic(`rejected after ${Math.max(...outcomes.map((o) => o.ms)).toFixed(0)} ms; 0 of ${names.length} keys left`)
})

test('fair: acquires that timed out during CLIENT PAUSE leave no key and no queue entry; another owner keeps its lock', async () => {
  const [server] = servers
  const m = managers.open(server.url, { commandTimeout: 1_000, fair: true })
  const owner = managers.open(server.url, { ttl: 60_000 })
  assert.equal(await (await m.acquire(uniqueName('warm'))).release(), true)
  const heldName = uniqueName('fair-held')
  const owned = await owner.acquire(heldName)
  const names = Array.from({ length: 5 }, (_, i) => uniqueName(`fair-${i}`))
  const queue = `{lock:${heldName}}:queue`

  const { over } = await stall(server, 3_000, 'pause')
  const outcomes = await acquireAll(m, [...names, heldName])
  assertTimedOut(outcomes)
  await over

  // Without the cleanup, the queue entry of the refused attempt would stay
  // (its key lives 6 s): it must go well before.
  const clean = () =>
    names.every((n) => server.cli('EXISTS', `lock:${n}`) === '0') && server.cli('EXISTS', queue) === '0'
  assert.ok(await eventually(clean, 4_000), `left: ${server.cli('KEYS', '*fair-*')}`)
  assert.equal(server.cli('GET', owned.key), owned.id, "another owner's lock was touched")
  assert.equal(await owned.release(), true)
})

test('Redlock: an attempt that timed out on a majority of stalled masters leaves no key on any master', async () => {
  const urls = servers.map((s) => s.url)
  const m = managers.open(urls, { commandTimeout: 1_000 })
  const owner = managers.open(urls, { ttl: 60_000 })
  assert.equal(await (await m.acquire(uniqueName('warm'))).release(), true)
  const ownedName = uniqueName('rl-owned')
  const owned = await owner.acquire(ownedName)
  const names = Array.from({ length: 5 }, (_, i) => uniqueName(`redlock-${i}`))

  const stalls = await Promise.all([stall(servers[0], 3_000), stall(servers[1], 3_000)])
  const outcomes = await acquireAll(m, [...names, ownedName])
  assertTimedOut(outcomes)
  await Promise.all(stalls.map((s) => s.over))

  const keysLeft = () => servers.flatMap((s) => names.filter((n) => s.cli('EXISTS', `lock:${n}`) === '1'))
  assert.ok(await eventually(() => keysLeft().length === 0, 10_000), `left: ${keysLeft()}`)
  for (const s of servers) assert.equal(s.cli('GET', owned.key), owned.id, "another owner's lock was touched")
  assert.equal(await owned.release(), true)
})

// A script that gets ECONNECTION and has nothing else to do ends: the
// cleanup keeps Node alive for at most connectTimeout + commandTimeout.
// With `warm`, the script connects first and acquires once told on stdin.
const script = (url, name, options, warm) => `
const m = require('.')(${JSON.stringify(url)}, ${JSON.stringify(options)})
const go = () => m.acquire(${JSON.stringify(name)}).then(
  () => console.log('granted'),
  (err) => console.log('rejected ' + err.code),
)
if (${warm}) {
  m.acquire('warm-' + process.pid).then((l) => l.release()).then(() => {
    console.log('ready')
    process.stdin.once('data', () => { process.stdin.destroy(); go() })
  })
} else go()
`

test('a script whose acquire timed out stays alive until the cleanup is done, then ends by itself', async (t) => {
  const [server] = servers
  const name = uniqueName('script')
  const child = spawnNode(['-e', script(server.url, name, { commandTimeout: 500, connectTimeout: 2_000 }, true)], {
    children,
    timeoutMs: 15_000,
  })
  await child.waitFor('ready')
  const { over } = await stall(server, 2_000)
  child.child.stdin.write('go\n')
  const rejectedAt = await child.waitFor('rejected ECONNECTION')
  await over
  const { code, stdout } = await child.exited
  const lingered = performance.now() - rejectedAt
  assert.equal(code, 0, stdout)
  assert.equal(server.cli('EXISTS', `lock:${name}`), '0', 'the key was left behind by the ended script')
  t.diagnostic(`the script ended ${lingered.toFixed(0)} ms after its rejection (the stall ended meanwhile)`)
})

test('a script whose acquire timed out on a server that never answers ends within connectTimeout + commandTimeout', async (t) => {
  const sockets = new Set()
  const hole = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.resume() // reads everything, answers nothing
  })
  await new Promise((resolve) => hole.listen(0, '127.0.0.1', resolve))
  t.after(() => {
    for (const s of sockets) s.destroy()
    hole.close()
  })
  const url = `redis://127.0.0.1:${hole.address().port}`
  const child = spawnNode(['-e', script(url, uniqueName('hole'), { commandTimeout: 500, connectTimeout: 300 }, false)], {
    children,
    timeoutMs: 15_000,
  })
  const rejectedAt = await child.waitFor('rejected ECONNECTION')
  const { code } = await child.exited
  const lingered = performance.now() - rejectedAt
  assert.equal(code, 0)
  // 800 ms allowed; the rest is slack for a busy machine.
  assert.ok(lingered < 5_000, `the script ended ${lingered.toFixed(0)} ms after its rejection`)
  t.diagnostic(`the script ended ${lingered.toFixed(0)} ms after its rejection (bound 800 ms)`)
})
