'use strict'

// One round of a set of workloads over a set of libraries, as run.js and
// scale-out.js run them: for each workload and each of its configurations,
// every library in an order rotated from round to round (a workload with
// `runRound` interleaves the libraries itself, in slices). Each result goes
// to `results` and to the console; correctness failures (a W4 counter that
// does not match its grants, overlapping grants) are shouted and returned.

const { rotate } = require('./stats.js')

/** One console line for a result. */
function summary(id, r) {
  if (r.error) return `ERROR ${r.error.split('\n')[0]}`
  const f = (v, d = 2) => (v === null || v === undefined ? '–' : v.toFixed(d))
  switch (id) {
    case 'w1':
      return `${f(r.opsPerSec, 0)} ops/s, p50 ${f(r.p50)} ms, p99 ${f(r.p99)} ms, ${f(r.cmdsPerOp, 1)} cmds/op`
    case 'w2':
      return `${f(r.opsPerSec, 0)} ops/s, ${f(r.cpuPerOp, 1)} CPU µs/op, Redis ${f(r.redisCpuPerOp, 1)} µs/op, ${f(r.switchesPerOp)} ctx sw/op, ${f(r.cmdsPerOp, 1)} cmds/op`
    case 'w5':
      return `handoff p50 ${f(r.handoffP50)} ms, p99 ${f(r.handoffP99)} ms, ${f(r.cmdsPerGrant, 1)} cmds/grant`
    default:
      return (
        `${f(r.grantsPerSec, 0)} grants/s, handoff p50 ${f(r.handoffP50)} p99 ${f(r.handoffP99)} ms, ` +
        `regranted ${f(r.regrantShare * 100, 0)} %, no grant ${r.tasksWithoutGrant}, longest wait ${f(r.longestWait, 0)} ms, ` +
        `${f(r.cmdsPerGrant, 1)} cmds/grant` +
        (id === 'w4' ? `, same process next ${f(r.sameGroupShare * 100, 0)} %, share ${f(r.shareMin)}–${f(r.shareMax)}, counter ${r.counterOk ? 'exact' : `MISMATCH (${r.counter} vs ${r.totalGrants} grants)`}` : '')
      )
  }
}

/**
 * Runs round `round` of `workloads` (`{ id, mod, configs, args() }`) over
 * `libs`, against `url` (a URL, or a topology's node URLs), measuring with
 * `admin`. `tag` prefixes the console lines and the keys. Resolves with
 * whether a correctness failure was seen.
 */
async function runRound({ tag = '', round, libs, workloads, url, admin, ttl, results, isStopping }) {
  let mismatch = false
  const prefix = `[round ${round + 1}]${tag ? ` ${tag}` : ''}`
  for (const w of workloads) {
    for (const config of w.configs) {
      if (isStopping()) throw new Error('stopped')
      // A reference row (see adapters.js) runs only the workloads it lists.
      const order = rotate(
        libs.filter((l) => !l.workloads || l.workloads.includes(w.id)),
        round,
      )
      const key = `bench:${tag ? `${tag.replace(/\W+/g, '')}:` : ''}r${round}:${w.id}:${config.retryDelay}`
      const args = { url, admin, ttl, retryDelay: config.retryDelay, ...w.args() }
      const what = `${w.id.toUpperCase()}${config.label ? ` ${config.label}` : ''}`
      const record = (lib, r) => {
        results.add(w.id, config.label, lib.id, r)
        console.log(`${prefix} ${what.padEnd(20)} ${lib.name.padEnd(22)} ${summary(w.id, r)}`)
        if (w.id === 'w4' && !r.error && !r.counterOk) {
          mismatch = true
          console.error(`\n!!!!! CORRECTNESS FAILURE: W4 ${lib.name} ${config.label}: counter ${r.counter}, but ${r.totalGrants} grants !!!!!\n`)
        }
        if (r.overlaps > 0) {
          mismatch = true
          console.error(`\n!!!!! CORRECTNESS FAILURE: ${tag ? `${tag} ` : ''}${what} ${lib.name}: ${r.overlaps} overlapping grants !!!!!\n`)
        }
      }
      if (w.mod.runRound) {
        // The workload interleaves the libraries itself.
        let byLib
        try {
          byLib = await w.mod.runRound({ libs: order, key, ...args })
        } catch (err) {
          byLib = Object.fromEntries(order.map((l) => [l.id, { error: err.message }]))
        }
        for (const lib of order) record(lib, byLib[lib.id])
        continue
      }
      for (const lib of order) {
        let r
        try {
          r = await w.mod.run({ lib, key: `${key}:${lib.id}`, ...args })
        } catch (err) {
          r = { error: err && err.message ? err.message : String(err) }
        }
        record(lib, r)
      }
    }
  }
  return mismatch
}

module.exports = { runRound, summary }
