'use strict'

// W1: one task, acquire → release on one key, back to back. Ops/s and the
// latency of a full acquire + release cycle; Redis commands per cycle.
//
// Sequential round trips on loopback are very sensitive to how the OS
// schedules this process and redis-server (on a small VM the same loop runs
// at 6k or 40k ops/s, switching every second or so). So the libraries are
// interleaved finely: a round is `slices` slices, and in each slice every
// library runs for `sliceMs`, in an order rotated from slice to slice. Each
// library thereby samples the same mix of scheduling states.

const { resetStats, commandStats, totalCalls } = require('./commands.js')
const { percentile, rotate } = require('./stats.js')
const { now, withTimeout } = require('./time.js')

// A slice (or the warm-up) that is not done this long after its end is a
// failed measurement (a library that hangs), not a hung benchmark.
const SLICE_LIMIT_MS = 15_000

function cycles(instance, key, duration) {
  return withTimeout(cyclesUnbounded(instance, key, duration), duration + SLICE_LIMIT_MS, 'W1 cycles')
}

async function cyclesUnbounded(instance, key, duration) {
  const latencies = []
  const startAt = now()
  const endAt = startAt + duration
  let t = startAt
  while (t < endAt) {
    await instance.release(await instance.acquire(key))
    const done = now()
    latencies.push(done - t)
    t = done
  }
  return { latencies, elapsed: t - startAt }
}

/** Runs every library of `libs`; resolves with `{ libId: result }`. */
async function runRound({ libs, url, admin, key, ttl, retryDelay, slices, sliceMs, warmup }) {
  const runs = libs.map((lib) => ({
    lib,
    instance: lib.create(url, { ttl, retryDelay }),
    key: `${key}:${lib.id}`,
    latencies: [],
    elapsed: 0,
    calls: 0,
    error: null,
  }))
  try {
    for (const r of runs) {
      try {
        await cycles(r.instance, r.key, warmup)
      } catch (err) {
        r.error = err
      }
    }
    for (let s = 0; s < slices; s++) {
      for (const r of rotate(runs, s)) {
        if (r.error) continue
        try {
          await resetStats(admin)
          const { latencies, elapsed } = await cycles(r.instance, r.key, sliceMs)
          r.calls += totalCalls(await commandStats(admin))
          for (const l of latencies) r.latencies.push(l)
          r.elapsed += elapsed
        } catch (err) {
          r.error = err
        }
      }
    }
  } finally {
    await Promise.all(runs.map((r) => r.instance.close().catch(() => {})))
  }
  const results = {}
  for (const r of runs) {
    results[r.lib.id] = r.error
      ? { error: r.error.message }
      : {
          opsPerSec: (r.latencies.length * 1000) / r.elapsed,
          p50: percentile(r.latencies, 50),
          p99: percentile(r.latencies, 99),
          cmdsPerOp: r.calls / r.latencies.length,
        }
  }
  return results
}

module.exports = { runRound }
