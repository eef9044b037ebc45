'use strict'

// Memory: 100 000 acquire/release cycles must not make the process grow.
// A child started with --expose-gc runs them (64 concurrent loops, one key
// each) and measures its RSS after a 10 000-cycle warm-up and at the end,
// both after a full GC.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const path = require('node:path')
const { startRedis } = require('./helpers/redis-server.js')

const TOTAL_CYCLES = 100_000
const WARMUP_CYCLES = 10_000
const CONCURRENCY = 64
/** Largest RSS growth accepted from the end of the warm-up to the end. */
const MAX_RSS_GROWTH_MB = 64

const root = path.join(__dirname, '..')

// The child: prints one JSON line { cycles, rssAfterWarmup, rssAtEnd, seconds }.
const child = `
const distLock = require(${JSON.stringify(root)})
const [url, total, warmup, concurrency] = process.argv.slice(1)

async function settleGc() {
  for (let i = 0; i < 3; i++) {
    global.gc()
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

;(async () => {
  const m = distLock(url, { retryDelay: 1, maxRetries: -1 })
  let cycles = 0
  let releasedFalse = 0
  async function runCycles(count) {
    let issued = 0
    await Promise.all(
      Array.from({ length: Number(concurrency) }, async (_, loop) => {
        while (issued < count) {
          issued++
          const lock = await m.acquire('memory-' + loop)
          if (!lock) throw new Error('no lock with maxRetries -1')
          if (!(await lock.release())) releasedFalse++
          cycles++
        }
      }),
    )
  }
  await runCycles(Number(warmup))
  await settleGc()
  const rssAfterWarmup = process.memoryUsage().rss
  const t0 = process.hrtime.bigint()
  await runCycles(Number(total) - Number(warmup))
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  await settleGc()
  const rssAtEnd = process.memoryUsage().rss
  await m.close()
  console.log(JSON.stringify({ cycles, releasedFalse, rssAfterWarmup, rssAtEnd, seconds }))
})().catch((err) => {
  console.error(err.stack)
  process.exitCode = 1
})
`

let server

before(async () => {
  server = await startRedis()
})

after(async () => {
  await server.stop()
})

test(`${TOTAL_CYCLES} acquire/release cycles grow RSS by less than ${MAX_RSS_GROWTH_MB} MB`, async (t) => {
  const { stdout } = await new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--expose-gc', '-e', child, server.url, TOTAL_CYCLES, WARMUP_CYCLES, CONCURRENCY],
      { cwd: root, timeout: 60_000, killSignal: 'SIGKILL' },
      (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve({ stdout: out })),
    )
  })
  const r = JSON.parse(stdout)
  assert.equal(r.cycles, TOTAL_CYCLES)
  assert.equal(r.releasedFalse, 0)
  // Only the prefix's fencing counter stays.
  const left = server.cli('KEYS', '*').split('\n').filter((k) => k !== '')
  assert.deepEqual(left, ['{lock:}:fencing'], 'locks left in Redis')

  const mb = (bytes) => bytes / 2 ** 20
  const growthMb = mb(r.rssAtEnd - r.rssAfterWarmup)
  const rate = (TOTAL_CYCLES - WARMUP_CYCLES) / r.seconds
  t.diagnostic(
    `${rate.toFixed(0)} cycles/s (${CONCURRENCY} loops); RSS after warm-up ${mb(r.rssAfterWarmup).toFixed(1)} MB, ` +
      `at end ${mb(r.rssAtEnd).toFixed(1)} MB, growth ${growthMb.toFixed(2)} MB`,
  )
  assert.ok(growthMb < MAX_RSS_GROWTH_MB, `RSS grew by ${growthMb.toFixed(1)} MB`)
})
