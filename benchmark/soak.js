#!/usr/bin/env node
'use strict'

// Load and soak test of dist-lock: `npm run soak` (or `node benchmark/soak.js`).
//
//   1. Hold: one process acquires N distinct locks at once (10 000 by
//      default), checks that Redis holds all of them, and releases them.
//   2. Cycles: P child processes (4 by default), each running L concurrent
//      loops (64), do acquire/release cycles: 1 000 000 in all by default
//      (`--cycles`), or for a fixed time (`--seconds`).
//
// Every child reports its RSS, active libuv handles
// (`process._getActiveHandles().length`) and, on Linux, its open file
// descriptors (`/proc/self/fd`) at start, after the warm-up, half-way, at
// the end and after `close()`, plus its cycle rate and the latency distribution of one
// cycle (acquire + release). The script exits with code 1 if a bound below is
// broken, a cycle failed, a release found its lock gone, or a lock key is left
// in Redis.
//
// Bounds, per child, from the end of the warm-up to the end of the run (both
// measured after a full GC):
//   - RSS grows by less than 64 MB;
//   - open file descriptors grow by at most 2;
//   - active handles grow by at most 2.
//
// Flags:
//   --seconds N      time-bounded mode: each child runs cycles for N seconds
//                    (the first min(5 s, N/4) are the warm-up)
//   --cycles N       total cycles over all children (default 1 000 000; the
//                    first 100 000 of each child's share, at least 10 % and
//                    at most half of it, are the warm-up)
//   --procs N        child processes (default 4)
//   --concurrency N  concurrent loops per child (default 64)
//   --hold N         locks held at once in phase 1 (default 10 000; 0 skips it)
//   --shared         all children share the same L keys, so each key is
//                    contended by P loops (default: every loop has its own key)
//
// It starts its own redis-server on a free port (never 6379) and stops it at
// the end.

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { performance } = require('node:perf_hooks')

const root = path.join(__dirname, '..')
const CHILD_FLAG = '--soak-child'

const BOUNDS = {
  rssGrowthMb: 64, // strictly less than
  fdGrowth: 2, // at most
  handleGrowth: 2, // at most
}

// Latency histogram: bucket i holds values up to 1.02^i µs (2 % resolution),
// from 1 µs to 100 s; children send their buckets, the parent merges them.
const HIST_BASE = 1.02
const HIST_BUCKETS = Math.ceil(Math.log(100e6) / Math.log(HIST_BASE)) + 1

function histBucket(micros) {
  if (micros <= 1) return 0
  return Math.min(HIST_BUCKETS - 1, Math.ceil(Math.log(micros) / Math.log(HIST_BASE)))
}

function histPercentile(buckets, p) {
  const total = buckets.reduce((a, b) => a + b, 0)
  if (total === 0) return NaN
  const rank = Math.ceil((p / 100) * total)
  let seen = 0
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]
    if (seen >= rank) return HIST_BASE ** i / 1000 // ms
  }
  return NaN
}

function fdCount() {
  try {
    return fs.readdirSync('/proc/self/fd').length
  } catch {
    return null // not Linux
  }
}

async function snapshot() {
  if (global.gc) {
    for (let i = 0; i < 3; i++) {
      global.gc()
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
  return {
    rss: process.memoryUsage().rss,
    heapUsed: process.memoryUsage().heapUsed,
    handles: process._getActiveHandles().length,
    fds: fdCount(),
  }
}

// ---------------------------------------------------------------------------
// Children

async function holdChild({ url, port, count }) {
  const createDistLock = require(root)
  const start = await snapshot()
  const m = createDistLock(url, { keyPrefix: 'soak:hold:', maxRetries: 0, ttl: 120_000 })
  const t0 = performance.now()
  const locks = await Promise.all(Array.from({ length: count }, (_, i) => m.acquire(`k${i}`)))
  const acquireMs = performance.now() - t0
  const notAcquired = locks.filter((l) => l === false).length
  const countKeys = () =>
    Number(
      execFileSync('redis-cli', ['-p', String(port), 'EVAL', "return #redis.call('KEYS', ARGV[1])", '0', 'soak:hold:*'], {
        encoding: 'utf8',
      }).trim(),
    )
  const keysWhileHeld = countKeys()
  const validWhileHeld = locks.filter((l) => l && l.isValid()).length
  const held = await snapshot()
  const t1 = performance.now()
  const released = await Promise.all(locks.map((l) => (l ? l.release() : false)))
  const releaseMs = performance.now() - t1
  const releasedTrue = released.filter((r) => r === true).length
  const keysAfterRelease = countKeys()
  const end = await snapshot()
  await m.close()
  await new Promise((resolve) => setTimeout(resolve, 200))
  const afterClose = await snapshot()
  return {
    mode: 'hold',
    count,
    notAcquired,
    keysWhileHeld,
    validWhileHeld,
    releasedTrue,
    keysAfterRelease,
    acquireMs,
    releaseMs,
    snapshots: { start, held, end, afterClose },
  }
}

async function cyclesChild({ url, proc, cycles, seconds, concurrency, shared }) {
  const createDistLock = require(root)
  const start = await snapshot()
  const m = createDistLock(url, { keyPrefix: 'soak:', retryDelay: 5, maxRetries: -1 })
  const keyOf = (loop) => (shared ? `shared:${loop}` : `p${proc}:${loop}`)

  const buckets = new Array(HIST_BUCKETS).fill(0)
  const failures = []
  let releasedFalse = 0

  // Runs the loops until `more()` says stop; returns the cycles done.
  async function run(more, record) {
    let done = 0
    await Promise.all(
      Array.from({ length: concurrency }, async (_, loop) => {
        const key = keyOf(loop)
        while (more(done)) {
          done++
          const t0 = performance.now()
          try {
            const lock = await m.acquire(key)
            if (lock === false) throw new Error('acquire gave false with maxRetries -1')
            if (!(await lock.release())) releasedFalse++
          } catch (err) {
            if (failures.length < 20) failures.push(`${err.code || ''} ${err.message}`)
            failures.total = (failures.total || 0) + 1
          }
          if (record) buckets[histBucket((performance.now() - t0) * 1000)]++
        }
      }),
    )
    return done
  }

  // The warm-up lets the allocators reach their working size; the measured
  // part runs in two halves with a snapshot between them, so that a leak
  // shows as growth in both halves.
  const t0 = performance.now()
  let warmupCycles
  let halves
  if (seconds !== undefined) {
    const warmupMs = Math.min(5000, (seconds * 1000) / 4)
    warmupCycles = await run(() => performance.now() < t0 + warmupMs, false)
    const halfMs = (seconds * 1000 - (performance.now() - t0)) / 2
    halves = [() => {
      const until = performance.now() + halfMs
      return () => performance.now() < until
    }, () => {
      const until = performance.now() + halfMs
      return () => performance.now() < until
    }]
  } else {
    const warm = Math.min(Math.max(Math.floor(cycles / 10), 100_000), Math.floor(cycles / 2))
    warmupCycles = await run((done) => done < warm, false)
    const first = Math.floor((cycles - warmupCycles) / 2)
    const second = cycles - warmupCycles - first
    halves = [() => (done) => done < first, () => (done) => done < second]
  }
  const afterWarmup = await snapshot()
  let measured = 0
  let measuredMs = 0
  let mid
  for (const [i, half] of halves.entries()) {
    const t1 = performance.now()
    measured += await run(half(), true)
    measuredMs += performance.now() - t1
    if (i === 0) mid = await snapshot()
  }
  const measuredSeconds = measuredMs / 1000
  const end = await snapshot()
  await m.close()
  await new Promise((resolve) => setTimeout(resolve, 200))
  const afterClose = await snapshot()
  return {
    mode: 'cycles',
    proc,
    warmupCycles,
    cycles: measured,
    seconds: measuredSeconds,
    opsPerSec: measured / measuredSeconds,
    buckets,
    failures: failures.total || 0,
    failureSamples: failures.slice(),
    releasedFalse,
    snapshots: { start, afterWarmup, mid, end, afterClose },
  }
}

if (process.argv[2] === CHILD_FLAG) {
  const job = JSON.parse(process.argv[3])
  ;(job.mode === 'hold' ? holdChild(job) : cyclesChild(job))
    .then((result) => {
      process.stdout.write(`RESULT ${JSON.stringify(result)}\n`)
    })
    .catch((err) => {
      console.error(`soak child ${job.mode} ${job.proc ?? ''} failed:`, err)
      process.exitCode = 1
    })
  return
}

// ---------------------------------------------------------------------------
// Parent

function parseArgs(argv) {
  const opts = { cycles: 1_000_000, seconds: undefined, procs: 4, concurrency: 64, hold: 10_000, shared: false }
  const positive = (name, v, min = 1) => {
    const n = Number(v)
    if (!Number.isInteger(n) || n < min) {
      console.error(`soak: --${name} needs an integer ≥ ${min}, got ${v}`)
      process.exit(2)
    }
    return n
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const [flag, inline] = a.includes('=') ? a.split(/=(.*)/s) : [a, undefined]
    const value = () => (inline !== undefined ? inline : argv[++i])
    switch (flag) {
      case '--seconds':
        opts.seconds = positive('seconds', value())
        break
      case '--cycles':
        opts.cycles = positive('cycles', value())
        break
      case '--procs':
        opts.procs = positive('procs', value())
        break
      case '--concurrency':
        opts.concurrency = positive('concurrency', value())
        break
      case '--hold':
        opts.hold = positive('hold', value(), 0)
        break
      case '--shared':
        opts.shared = true
        break
      case '--help':
      case '-h':
        console.log('usage: node benchmark/soak.js [--seconds N | --cycles N] [--procs N] [--concurrency N] [--hold N] [--shared]')
        process.exit(0)
        break
      default:
        console.error(`soak: unknown argument ${a}`)
        process.exit(2)
    }
  }
  return opts
}

const children = new Set()

function runChild(job, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', __filename, CHILD_FLAG, JSON.stringify(job)], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    children.add(child)
    let stdout = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
    }, timeoutMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '))
      if (code !== 0 || !line) {
        reject(new Error(`soak child ${job.mode} ${job.proc ?? ''} ended with code ${code}, signal ${signal}${signal === 'SIGKILL' ? ` (killed after ${timeoutMs} ms?)` : ''}`))
        return
      }
      resolve(JSON.parse(line.slice('RESULT '.length)))
    })
  })
}

const mb = (bytes) => (bytes / 2 ** 20).toFixed(1)
const signed = (n, digits = 0) => `${n >= 0 ? '+' : ''}${n.toFixed(digits)}`

function say(line) {
  console.log(`soak: ${line}`)
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  const { startRedis, freePort } = require(path.join(root, '__test__', 'helpers', 'redis-server.js'))
  let port = await freePort()
  while (port === 6379) port = await freePort()
  const server = await startRedis({ port })
  if (server.port === 6379) throw new Error('refusing to use port 6379')
  const violations = []
  const stopAll = () => {
    for (const c of children) c.kill('SIGKILL')
  }
  process.once('SIGINT', () => {
    stopAll()
    server.stop().finally(() => process.exit(130))
  })
  process.once('SIGTERM', () => {
    stopAll()
    server.stop().finally(() => process.exit(143))
  })

  const mode = opts.seconds !== undefined ? `${opts.seconds} s per child` : `${opts.cycles} cycles in all`
  say(
    `redis-server on port ${server.port}; ${opts.procs} children × ${opts.concurrency} loops, ${mode}, ` +
      `${opts.shared ? `${opts.concurrency} keys shared by all children` : 'one key per loop'}; hold ${opts.hold} locks`,
  )
  say(
    `bounds per child, warm-up → end: RSS growth < ${BOUNDS.rssGrowthMb} MB, fd growth ≤ ${BOUNDS.fdGrowth}, ` +
      `handle growth ≤ ${BOUNDS.handleGrowth}; no failed cycle, no release finding its lock gone, no key left`,
  )

  const t0 = performance.now()
  try {
    // --- phase 1: hold ----------------------------------------------------
    if (opts.hold > 0) {
      const h = await runChild({ mode: 'hold', url: server.url, port: server.port, count: opts.hold }, 300_000)
      const s = h.snapshots
      say(
        `hold: ${h.count - h.notAcquired}/${h.count} locks held at once (acquired in ${h.acquireMs.toFixed(0)} ms, ` +
          `${(h.count / (h.acquireMs / 1000)).toFixed(0)}/s; released in ${h.releaseMs.toFixed(0)} ms), ` +
          `${h.keysWhileHeld} keys in Redis while held, ${h.keysAfterRelease} after release`,
      )
      say(
        `hold: RSS ${mb(s.start.rss)} → ${mb(s.held.rss)} MB holding → ${mb(s.end.rss)} MB released ` +
          `(JS heap ${mb(s.start.heapUsed)} → ${mb(s.held.heapUsed)} → ${mb(s.end.heapUsed)} MB); ` +
          `fds ${s.start.fds} → ${s.held.fds} → ${s.end.fds} (after close ${s.afterClose.fds}); ` +
          `handles ${s.start.handles} → ${s.held.handles} → ${s.end.handles} (after close ${s.afterClose.handles})`,
      )
      if (h.notAcquired !== 0) violations.push(`hold: ${h.notAcquired} locks not acquired`)
      if (h.keysWhileHeld !== h.count) violations.push(`hold: ${h.keysWhileHeld} keys in Redis while ${h.count} held`)
      if (h.validWhileHeld !== h.count) violations.push(`hold: only ${h.validWhileHeld} locks valid while held`)
      if (h.releasedTrue !== h.count) violations.push(`hold: only ${h.releasedTrue} releases gave true`)
      if (h.keysAfterRelease !== 0) violations.push(`hold: ${h.keysAfterRelease} keys left after release`)
    }

    // --- phase 2: cycles ----------------------------------------------------
    const perChild = Math.ceil(opts.cycles / opts.procs)
    const childTimeout = opts.seconds !== undefined ? opts.seconds * 1000 + 120_000 : 3_600_000
    const tc = performance.now()
    const results = await Promise.all(
      Array.from({ length: opts.procs }, (_, proc) =>
        runChild(
          {
            mode: 'cycles',
            url: server.url,
            proc,
            cycles: opts.seconds === undefined ? perChild : undefined,
            seconds: opts.seconds,
            concurrency: opts.concurrency,
            shared: opts.shared,
          },
          childTimeout,
        ),
      ),
    )
    const phaseSeconds = (performance.now() - tc) / 1000

    const merged = new Array(HIST_BUCKETS).fill(0)
    let totalMeasured = 0
    let totalAll = 0
    for (const r of results) {
      r.buckets.forEach((n, i) => (merged[i] += n))
      totalMeasured += r.cycles
      totalAll += r.cycles + r.warmupCycles
      const s = r.snapshots
      const rssGrowth = (s.end.rss - s.afterWarmup.rss) / 2 ** 20
      const fdGrowth = s.fds === null || s.end.fds === null ? 0 : s.end.fds - s.afterWarmup.fds
      const handleGrowth = s.end.handles - s.afterWarmup.handles
      say(
        `child ${r.proc}: ${r.cycles} cycles in ${r.seconds.toFixed(1)} s after ${r.warmupCycles} warm-up = ` +
          `${r.opsPerSec.toFixed(0)} cycles/s; p50 ${histPercentile(r.buckets, 50).toFixed(2)} ms, ` +
          `p99 ${histPercentile(r.buckets, 99).toFixed(2)} ms, max ${histPercentile(r.buckets, 100).toFixed(1)} ms`,
      )
      say(
        `child ${r.proc}: RSS ${mb(s.start.rss)} start, ${mb(s.afterWarmup.rss)} after warm-up, ${mb(s.mid.rss)} mid, ${mb(s.end.rss)} end ` +
          `(${signed(rssGrowth, 1)} MB), ${mb(s.afterClose.rss)} after close; JS heap ${mb(s.afterWarmup.heapUsed)} / ${mb(s.mid.heapUsed)} / ${mb(s.end.heapUsed)} MB; ` +
          `fds ${s.start.fds} / ${s.afterWarmup.fds} / ${s.mid.fds} / ${s.end.fds} (${signed(fdGrowth)}) / ${s.afterClose.fds} after close; ` +
          `handles ${s.start.handles} / ${s.afterWarmup.handles} / ${s.mid.handles} / ${s.end.handles} (${signed(handleGrowth)}) / ${s.afterClose.handles} after close`,
      )
      if (!(rssGrowth < BOUNDS.rssGrowthMb)) violations.push(`child ${r.proc}: RSS grew by ${rssGrowth.toFixed(1)} MB`)
      if (fdGrowth > BOUNDS.fdGrowth) violations.push(`child ${r.proc}: ${fdGrowth} more open fds`)
      if (handleGrowth > BOUNDS.handleGrowth) violations.push(`child ${r.proc}: ${handleGrowth} more active handles`)
      if (r.failures > 0) violations.push(`child ${r.proc}: ${r.failures} cycles failed, e.g. ${r.failureSamples.slice(0, 3).join('; ')}`)
      if (r.releasedFalse > 0) violations.push(`child ${r.proc}: ${r.releasedFalse} releases found their lock gone`)
      if (r.cycles === 0) violations.push(`child ${r.proc}: no cycle measured`)
    }
    const aggregate = results.reduce((a, r) => a + r.opsPerSec, 0)
    say(
      `total: ${totalAll} cycles (${totalMeasured} measured) in ${phaseSeconds.toFixed(1)} s; ` +
        `${aggregate.toFixed(0)} cycles/s (${(aggregate * 2).toFixed(0)} ops/s: acquire + release); ` +
        `latency of a cycle: p50 ${histPercentile(merged, 50).toFixed(2)} ms, p99 ${histPercentile(merged, 99).toFixed(2)} ms, ` +
        `p99.9 ${histPercentile(merged, 99.9).toFixed(2)} ms, max ${histPercentile(merged, 100).toFixed(1)} ms`,
    )

    const leftover = Number(server.cli('EVAL', "return #redis.call('KEYS', ARGV[1])", '0', 'soak:*'))
    if (leftover !== 0) violations.push(`${leftover} lock keys left in Redis`)
    say(`lock keys left in Redis: ${leftover}; redis-server RSS ${mb(Number(server.cli('INFO', 'memory').match(/used_memory_rss:(\d+)/)[1]))} MB`)
  } catch (err) {
    violations.push(err.message)
  } finally {
    stopAll()
    await server.stop()
  }

  const took = ((performance.now() - t0) / 1000).toFixed(1)
  if (violations.length > 0) {
    for (const v of violations) say(`BOUND BROKEN: ${v}`)
    say(`FAIL after ${took} s`)
    process.exitCode = 1
  } else {
    say(`PASS after ${took} s: all bounds held`)
  }
}

main().catch((err) => {
  console.error('soak:', err)
  process.exitCode = 1
})
