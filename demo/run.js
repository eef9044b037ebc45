'use strict'

// `npm run demo`: several worker processes (demo/worker.js) run the dist-lock
// README example against one Redis, contending for one lock for a few
// seconds, first in the default mode and then in fair mode; this process
// prints both summaries side by side (longest wait, grants per worker,
// attempts per grant) and checks that at most one worker held the lock at
// any time.
//
// Redis: $REDIS_URL if set; else a Redis answering PING on 127.0.0.1:6379;
// else a throwaway redis-server (from PATH) on a free port, stopped at the
// end. Keys are prefixed with "demo:<pid>:", so no other key is touched.

const { fork } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const WORKERS = 4
// How long the workers of one mode keep taking the lock.
const DURATION_MS = 3_000
const RESOURCE = 'shared-resource-name'
const KEY_PREFIX = `demo:${process.pid}:`
// A mode that has not finished by then has failed.
const DEADLINE_MS = 30_000

let distLockFactory
try {
  distLockFactory = require('dist-lock')
} catch (err) {
  console.error(`The native addon could not be loaded: ${err.message.split('\n')[0]}`)
  console.error('In a clone, build it first (needs Rust stable): npm install && npm run build')
  process.exit(1)
}
const { startRedis, hasRedisServer } = require('../__test__/helpers/redis-server.js')

/** Whether a Redis without a password answers PING on host:port. */
function pingRedis(host, port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const sock = net.connect(port, host)
    let reply = ''
    const done = (ok) => {
      sock.destroy()
      resolve(ok)
    }
    sock.setTimeout(timeoutMs, () => done(false))
    sock.once('error', () => done(false))
    sock.once('connect', () => sock.write('PING\r\n'))
    sock.on('data', (d) => {
      reply += d
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'))
    })
  })
}

/** The URL without its password, for printing. */
function redact(url) {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(unparsable URL)'
  }
}

/** { url, description, server } where server is ours to stop, or null. */
async function findRedis() {
  if (process.env.REDIS_URL) {
    return { url: process.env.REDIS_URL, description: `REDIS_URL (${redact(process.env.REDIS_URL)})`, server: null }
  }
  if (await pingRedis('127.0.0.1', 6379)) {
    return { url: 'redis://127.0.0.1:6379', description: 'the Redis answering on 127.0.0.1:6379', server: null }
  }
  if (!hasRedisServer()) return null
  const server = await startRedis()
  return { url: server.url, description: `a throwaway redis-server on port ${server.port} (stopped at the end)`, server }
}

function pad(value, width) {
  return String(value).padEnd(width)
}

/**
 * Runs the workers in one mode until DURATION_MS has passed; resolves with
 * what they did: { grants, perWorker, attemptsPerGrant, longestWait,
 * longestWaitWorker, maxHolders, counter, lost, errors, totalMs }.
 */
async function runMode(redis, fair, children) {
  const counterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-demo-'))
  try {
    const counterFile = path.join(counterDir, 'counter')
    fs.writeFileSync(counterFile, '0')
    const errors = []
    const events = []
    const exits = []
    const readies = []
    for (let id = 1; id <= WORKERS; id++) {
      const child = fork(path.join(__dirname, 'worker.js'), [], {
        env: {
          ...process.env,
          DEMO_WORKER_ID: String(id),
          DEMO_REDIS_URL: redis.url,
          DEMO_KEY_PREFIX: KEY_PREFIX,
          DEMO_DURATION_MS: String(DURATION_MS),
          DEMO_FAIR: fair ? '1' : '0',
          DEMO_COUNTER_FILE: counterFile,
        },
      })
      children.push(child)
      const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ id, code, signal })))
      exits.push(exited)
      // Ready when it says so; a worker that dies while loading counts as done.
      readies.push(Promise.race([new Promise((resolve) => child.once('message', resolve)), exited]))
      child.on('message', (msg) => {
        if (msg.type === 'event') events.push(msg)
        else if (msg.type === 'error') errors.push(`worker ${msg.worker}: ${msg.message}`)
      })
    }
    await Promise.all(readies)

    const start = Date.now()
    for (const child of children) {
      if (child.connected) child.send({ type: 'go', start })
    }
    const deadline = setTimeout(() => {
      errors.push(`the ${fair ? 'fair' : 'default'} run did not finish within ${DEADLINE_MS} ms`)
      for (const child of children) child.kill()
    }, DEADLINE_MS)
    const results = await Promise.all(exits)
    const totalMs = Date.now() - start
    clearTimeout(deadline)
    children.length = 0
    for (const r of results) {
      if (r.code !== 0) errors.push(`worker ${r.id} exited with ${r.signal || `code ${r.code}`}`)
    }

    // Holders over time: a release sorts before a grant of the same ms.
    const rank = (e) => (e.event === 'released' ? 0 : 1)
    events.sort((a, b) => a.t - b.t || rank(a) - rank(b))
    let holders = 0
    let maxHolders = 0
    for (const e of events) {
      if (e.event === 'acquired') maxHolders = Math.max(maxHolders, ++holders)
      else if (e.event === 'released') holders--
    }
    const grants = events.filter((e) => e.event === 'acquired')
    const perWorker = []
    for (let id = 1; id <= WORKERS; id++) perWorker.push(grants.filter((e) => e.worker === id).length)
    const longest = grants.reduce((m, e) => (e.waited > m.waited ? e : m), { waited: 0, worker: '-' })
    return {
      grants: grants.length,
      perWorker,
      attemptsPerGrant: grants.reduce((sum, e) => sum + e.attempt, 0) / Math.max(1, grants.length),
      longestWait: longest.waited,
      longestWaitWorker: longest.worker,
      longestWaitAttempts: longest.attempt,
      maxHolders,
      counter: Number(fs.readFileSync(counterFile, 'utf8')),
      lost: events.filter((e) => e.event === 'release-lost').length,
      errors,
      totalMs,
    }
  } finally {
    fs.rmSync(counterDir, { recursive: true, force: true })
  }
}

/** Whether a run shows mutual exclusion: one holder at a time, no lost update. */
function excluded(r) {
  return r.errors.length === 0 && r.grants > 0 && r.maxHolders === 1 && r.counter === r.grants && r.lost === 0
}

function printSummaries(def, fair, lockFree) {
  const rows = [
    ['', 'default', 'fair: true'],
    ['grants', def.grants, fair.grants],
    ['grants per worker', def.perWorker.join(' / '), fair.perWorker.join(' / ')],
    [
      'longest wait',
      `${Math.round(def.longestWait)} ms (worker ${def.longestWaitWorker}, ${def.longestWaitAttempts} attempts)`,
      `${Math.round(fair.longestWait)} ms (worker ${fair.longestWaitWorker}, ${fair.longestWaitAttempts} attempts)`,
    ],
    ['attempts per grant', def.attemptsPerGrant.toFixed(2), fair.attemptsPerGrant.toFixed(2)],
    ['max concurrent holders', def.maxHolders, fair.maxHolders],
    ['shared counter', `${def.counter} of ${def.grants}`, `${fair.counter} of ${fair.grants}`],
    ['releases of an expired lock', def.lost, fair.lost],
    ['lock free after both runs', lockFree ? 'yes' : 'NO', ''],
  ]
  const w0 = Math.max(...rows.map((r) => String(r[0]).length)) + 2
  const w1 = Math.max(...rows.map((r) => String(r[1]).length)) + 3
  for (const [label, a, b] of rows) console.log(`  ${pad(label, w0)}${pad(a, w1)}${b}`.trimEnd())
}

async function main() {
  const redis = await findRedis()
  if (!redis) {
    console.error('No Redis found: REDIS_URL is not set, nothing answers PING on 127.0.0.1:6379,')
    console.error('and there is no redis-server on PATH to start a throwaway one.')
    console.error('Install Redis (e.g. the "redis-server" package of your OS) or set')
    console.error('REDIS_URL=redis://host:port to a Redis the demo may use.')
    return 1
  }
  // Used at the end to check that the lock is free; creating it checks the
  // URL (it does not connect yet).
  let checker
  try {
    checker = distLockFactory(redis.url, { keyPrefix: KEY_PREFIX, maxRetries: 0 })
  } catch (err) {
    console.error(`Cannot use ${redis.description}: ${err.message}`)
    if (redis.server) await redis.server.stop()
    return 1
  }
  const children = []
  const cleanup = async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill()
    }
    await checker.close()
    if (redis.server) await redis.server.stop()
  }
  process.once('SIGINT', () => {
    console.log('\ninterrupted: stopping the workers')
    cleanup().finally(() => process.exit(130))
  })

  try {
    console.log(`dist-lock demo: ${WORKERS} worker processes share one lock "${RESOURCE}",`)
    console.log(`${DURATION_MS / 1000} s in the default mode, then ${DURATION_MS / 1000} s in fair mode.`)
    console.log(`Redis: ${redis.description}; keys prefixed "${KEY_PREFIX}"`)
    console.log('Each round: acquire (callback form), work on a shared counter file, release.')
    console.log('')

    const def = await runMode(redis, false, children)
    console.log(`default mode: ${def.grants} grants in ${def.totalMs} ms`)
    const fair = await runMode(redis, true, children)
    console.log(`fair mode:    ${fair.grants} grants in ${fair.totalMs} ms`)
    console.log('')

    // Is the lock free again? Take it once (maxRetries 0) and hand it back.
    const lock = await checker.acquire(RESOURCE)
    const lockFree = lock !== false
    if (lock) await lock.release()

    const errors = [...def.errors, ...fair.errors]
    if (errors.length > 0) {
      for (const e of errors) console.log(`error: ${e}`)
      console.log(`The demo failed. Is Redis reachable at ${redact(redis.url)}?`)
      return 1
    }

    console.log('Summary')
    printSummaries(def, fair, lockFree)
    console.log('')
    if (!excluded(def) || !excluded(fair) || !lockFree) {
      console.log('The demo did NOT show mutual exclusion as expected (see above).')
      return 1
    }
    console.log('Only one worker held the lock at any time, in both modes.')
    console.log(
      'Default mode: a free lock goes to whichever process asks first (each process serves its own waiters in order);',
    )
    console.log(
      'choose fair: true when processes contend for one lock and none may wait much longer than the others.',
    )
    return 0
  } finally {
    await cleanup()
  }
}

main().then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    console.error(err)
    process.exitCode = 1
  },
)
