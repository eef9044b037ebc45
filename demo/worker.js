'use strict'

// One demo worker (a child process forked by demo/run.js). Until the run's
// time is up, it runs the dist-lock 1.0 README example in a loop: acquire
// 'shared-resource-name' with the callback form, do some work, release the
// lock; in fair mode (DEMO_FAIR=1) with `fair: true`.
//
// The "work" is a read-modify-write of a counter in a shared file, with a
// pause between the read and the write: two workers inside it at once would
// lose an update, so the final count shows whether the lock excluded them.
//
// Every event goes to the parent as { t, worker, event, ... }, where t is
// Date.now() - start (the same wall clock in every process). A holder's
// interval is stamped from the moment its callback sees the grant to the
// moment it calls release(), both inside the real lock interval in Redis, so
// two holders' intervals can only overlap if the lock failed.

const fs = require('node:fs')

const workerId = Number(process.env.DEMO_WORKER_ID)
const redisUrl = process.env.DEMO_REDIS_URL
const keyPrefix = process.env.DEMO_KEY_PREFIX
const durationMs = Number(process.env.DEMO_DURATION_MS)
const fair = process.env.DEMO_FAIR === '1'
const counterFile = process.env.DEMO_COUNTER_FILE

// The package itself (resolved through its "exports" field).
const distLock = require('dist-lock')(redisUrl, { keyPrefix, fair })

let start = 0
const elapsed = () => Date.now() - start

function report(event, extra = {}) {
  process.send({ type: 'event', t: elapsed(), worker: workerId, event, ...extra })
}

function fail(err) {
  process.send({ type: 'error', worker: workerId, message: `${err.name} ${err.code || ''}: ${err.message}` })
  distLock.close(() => process.exit(1))
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const randomInt = (min, max) => min + Math.floor(Math.random() * (max - min + 1))

async function doSomeWork() {
  const before = Number(fs.readFileSync(counterFile, 'utf8'))
  await sleep(randomInt(20, 60))
  fs.writeFileSync(counterFile, String(before + 1))
}

function round() {
  // The 1.0 README example, with a URL as the first argument of the factory.
  distLock.acquire('shared-resource-name', (err, lock) => {
    if (err) return fail(err) // Something went wrong. Is Redis down?
    // We hold the lock for "shared-resource-name": no other process can
    // acquire it until we release it (or its ttl runs out).
    report('acquired', { attempt: lock.acquiredOnAttempt, waited: lock.acquireDelay })
    doSomeWork().then(() => {
      // Work is done, so release the lock.
      report('released')
      lock.release((err, released) => {
        if (err) return fail(err)
        if (!released) report('release-lost') // the lock had expired: not ours any more
        if (elapsed() < durationMs) {
          // A short pause before the next round, as a real worker would have.
          setTimeout(round, randomInt(5, 20))
        } else {
          distLock.close(() => process.disconnect())
        }
      })
    }, fail)
  })
}

process.on('message', (msg) => {
  if (msg && msg.type === 'go') {
    start = msg.start
    round()
  }
})
process.send({ type: 'ready', worker: workerId })
