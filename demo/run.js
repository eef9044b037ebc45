'use strict'

// `npm run demo`: several worker processes (demo/worker.js) run the dist-lock
// README example against one Redis, contending for one lock, and this
// process prints their timeline and a summary.
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
const ROUNDS = 3
const RESOURCE = 'shared-resource-name'
const KEY_PREFIX = `demo:${process.pid}:`
// Events are printed in time order; one from another process may arrive a
// little late, so each is held this long before it is printed.
const REORDER_MS = 100
const DEADLINE_MS = 60_000

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
  return String(value).padStart(width)
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
  let counterDir = null
  const children = []
  const cleanup = async () => {
    for (const child of children) {
      if (child.exitCode === null && child.signalCode === null) child.kill()
    }
    checker.close()
    if (counterDir) fs.rmSync(counterDir, { recursive: true, force: true })
    if (redis.server) await redis.server.stop()
  }
  let interrupted = false
  process.once('SIGINT', () => {
    interrupted = true
    console.log('\ninterrupted: stopping the workers')
    cleanup().finally(() => process.exit(130))
  })

  try {
    console.log(`dist-lock demo: ${WORKERS} worker processes x ${ROUNDS} rounds, one lock "${RESOURCE}"`)
    console.log(`Redis: ${redis.description}; keys prefixed "${KEY_PREFIX}"`)
    console.log('Each round: acquire (callback form), work on a shared counter file, release.')
    console.log('')

    counterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-demo-'))
    const counterFile = path.join(counterDir, 'counter')
    fs.writeFileSync(counterFile, '0')

    // Fork the workers and wait until each has loaded dist-lock.
    const workerErrors = []
    const events = []
    let pending = []
    const exits = []
    const readies = []
    for (let id = 1; id <= WORKERS; id++) {
      const child = fork(path.join(__dirname, 'worker.js'), [], {
        env: {
          ...process.env,
          DEMO_WORKER_ID: String(id),
          DEMO_REDIS_URL: redis.url,
          DEMO_KEY_PREFIX: KEY_PREFIX,
          DEMO_ROUNDS: String(ROUNDS),
          DEMO_COUNTER_FILE: counterFile,
        },
      })
      children.push(child)
      const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ id, code, signal })))
      exits.push(exited)
      // Ready when it says so; a worker that dies while loading counts as done.
      readies.push(Promise.race([new Promise((resolve) => child.once('message', resolve)), exited]))
      child.on('message', (msg) => {
        if (msg.type === 'event') {
          events.push(msg)
          pending.push(msg)
        } else if (msg.type === 'error') {
          workerErrors.push(`worker ${msg.worker}: ${msg.message}`)
        }
      })
    }
    await Promise.all(readies)

    // The timeline, printed in time order as it happens.
    console.log(`${pad('elapsed', 9)}  worker    event`)
    let holders = 0
    let maxHolders = 0
    const byTime = (a, b) =>
      a.t - b.t || (a.event === 'released' ? -1 : 0) - (b.event === 'released' ? -1 : 0)
    const print = (e) => {
      let text = e.event
      if (e.event === 'acquired') {
        holders++
        maxHolders = Math.max(maxHolders, holders)
        text = `acquired (attempt ${e.attempt}, waited ${e.waited} ms)`
      } else if (e.event === 'released') {
        holders--
      } else if (e.event === 'working') {
        text = `working (${e.detail})`
      } else if (e.event === 'release-lost') {
        text = 'release returned false: the lock had expired before release'
      }
      const holderNote = e.event === 'acquired' || e.event === 'released' ? `   [holders: ${holders}]` : ''
      console.log(`${pad(e.t, 6)} ms  worker ${e.worker}  ${text}${holderNote}`)
    }
    const flush = (all) => {
      if (interrupted) return
      pending.sort(byTime)
      const limit = all ? Infinity : Date.now() - start - REORDER_MS
      const ready = pending.filter((e) => e.t <= limit)
      pending = pending.filter((e) => e.t > limit)
      ready.forEach(print)
    }

    const start = Date.now()
    for (const child of children) {
      if (child.connected) child.send({ type: 'go', start })
    }
    const ticker = setInterval(() => flush(false), 20)
    const deadline = setTimeout(() => {
      workerErrors.push(`the demo did not finish within ${DEADLINE_MS} ms`)
      for (const child of children) child.kill()
    }, DEADLINE_MS)
    const results = await Promise.all(exits)
    const totalMs = Date.now() - start
    clearInterval(ticker)
    clearTimeout(deadline)
    flush(true)

    for (const r of results) {
      if (r.code !== 0) workerErrors.push(`worker ${r.id} exited with ${r.signal || `code ${r.code}`}`)
    }

    if (interrupted) return 130
    if (workerErrors.length > 0) {
      console.log('')
      for (const e of workerErrors) console.log(`error: ${e}`)
      console.log(`The demo failed. Is Redis reachable at ${redact(redis.url)}?`)
      return 1
    }

    // Is the lock free again? Take it once (maxRetries 0) and hand it back.
    let lockFree
    try {
      const lock = await checker.acquire(RESOURCE)
      lockFree = lock !== false
      if (lock) await lock.release()
    } finally {
      await checker.close()
    }

    const grants = events.filter((e) => e.event === 'acquired')
    const expected = WORKERS * ROUNDS
    const counter = Number(fs.readFileSync(counterFile, 'utf8'))
    const lost = events.filter((e) => e.event === 'release-lost').length
    const attempts = grants.reduce((sum, e) => sum + e.attempt, 0)
    const longest = grants.reduce((m, e) => Math.max(m, e.waited), 0)

    console.log('')
    console.log('Summary')
    console.log(`  grants:                      ${grants.length} (expected ${expected})`)
    console.log(`  max concurrent holders:      ${maxHolders}`)
    console.log(`  shared counter:              ${counter} (expected ${expected}; a lost update would show less)`)
    console.log(`  acquisition attempts:        ${attempts} in all, longest wait ${longest} ms`)
    console.log(`  releases of an expired lock: ${lost}`)
    console.log(`  lock free after the run:     ${lockFree ? 'yes' : 'NO'}`)
    console.log(`  total time:                  ${totalMs} ms`)

    const ok =
      grants.length === expected &&
      maxHolders === 1 &&
      counter === expected &&
      lost === 0 &&
      lockFree
    if (!ok) {
      console.log('')
      console.log('The demo did NOT show mutual exclusion as expected (see above).')
      return 1
    }
    console.log('')
    console.log('Only one worker held the lock at any time.')
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
