'use strict'

// W2: 200 acquire → release loops in flight at once, each on its own key
// (no contention). Each library runs in a child process of its own, so that
// the process's CPU time (process.cpuUsage: every thread, the native core's
// included) is the library's. Ops/s, CPU µs per op, Redis commands per op;
// also, to explain the CPU figures, redis-server's CPU per op (INFO cpu) and
// the child's context switches per op (process.resourceUsage).
//
// As in W1, the libraries take turns in slices (all children are started
// and warmed up first, then each runs `sliceMs` in turn, in an order rotated
// from slice to slice), so that they share the machine's changing state.

const { Child } = require('./children.js')
const { library } = require('./adapters.js')
const { resetStats, commandStats, totalCalls, redisCpuUs } = require('./commands.js')
const { rotate } = require('./stats.js')
const { now } = require('./time.js')

// ---- parent side

/** Runs every library of `libs`; resolves with `{ libId: result }`. */
async function runRound({ libs, url, admin, key, ttl, retryDelay, slices, sliceMs, warmup, inflight }) {
  const runs = libs.map((lib) => ({ lib, child: new Child(), ops: 0, elapsed: 0, cpuUs: 0, switches: 0, redisCpu: 0, calls: 0, error: null }))
  try {
    await Promise.all(
      runs.map((r) =>
        r.child
          .ask('w2:prepare', { libId: r.lib.id, url, key: `${key}:${r.lib.id}`, ttl, retryDelay, inflight }, 20_000)
          .catch((err) => (r.error = err)),
      ),
    )
    for (const r of runs) {
      if (!r.error) await r.child.ask('w2:go', { duration: warmup }, warmup + 20_000).catch((err) => (r.error = err))
    }
    for (let s = 0; s < slices; s++) {
      for (const r of rotate(runs, s)) {
        if (r.error) continue
        try {
          await resetStats(admin)
          const redisCpu = await redisCpuUs(admin)
          const m = await r.child.ask('w2:go', { duration: sliceMs }, sliceMs + 20_000)
          r.redisCpu += (await redisCpuUs(admin)) - redisCpu
          r.calls += totalCalls(await commandStats(admin))
          r.ops += m.ops
          r.elapsed += m.elapsed
          r.cpuUs += m.cpuUs
          r.switches += m.switches
        } catch (err) {
          r.error = err
        }
      }
    }
    await Promise.all(runs.map((r) => (r.error ? null : r.child.ask('w2:close', {}, 10_000).catch(() => {}))))
  } finally {
    await Promise.all(runs.map((r) => r.child.kill()))
  }
  const results = {}
  for (const r of runs) {
    results[r.lib.id] = r.error
      ? { error: r.error.message }
      : {
          opsPerSec: (r.ops * 1000) / r.elapsed,
          cpuPerOp: r.cpuUs / r.ops,
          redisCpuPerOp: r.redisCpu / r.ops,
          switchesPerOp: r.switches / r.ops,
          cmdsPerOp: r.calls / r.ops,
        }
  }
  return results
}

// ---- child side

async function loops(instance, key, inflight, duration) {
  const endAt = now() + duration
  let ops = 0
  await Promise.all(
    Array.from({ length: inflight }, async (_, i) => {
      const k = `${key}:${i}`
      while (now() < endAt) {
        await instance.release(await instance.acquire(k))
        ops++
      }
    }),
  )
  return ops
}

const childOps = {
  async 'w2:prepare'({ libId, url, key, ttl, retryDelay, inflight }, state) {
    state.w2 = { instance: library(libId).create(url, { ttl, retryDelay }), key, inflight }
  },
  async 'w2:go'({ duration }, state) {
    const { instance, key, inflight } = state.w2
    const cpu = process.cpuUsage()
    const usage = process.resourceUsage()
    const startAt = now()
    const ops = await loops(instance, key, inflight, duration)
    const elapsed = now() - startAt
    const used = process.cpuUsage(cpu)
    const after = process.resourceUsage()
    const switches =
      after.voluntaryContextSwitches - usage.voluntaryContextSwitches +
      (after.involuntaryContextSwitches - usage.involuntaryContextSwitches)
    return { ops, elapsed, cpuUs: used.user + used.system, switches }
  },
  async 'w2:close'(_, state) {
    await state.w2.instance.close()
    state.w2 = null
  },
}

module.exports = { runRound, childOps }
