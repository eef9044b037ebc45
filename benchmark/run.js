'use strict'

// `npm run bench [-- --quick]`: dist-lock against its peers (a bare ioredis
// loop, redlock 4, redlock 5 beta if installed, redis-semaphore), on one
// redis-server that this run starts on a free port (never 6379) and stops at
// the end. Workloads W1–W5 (one file each), in rounds; in each round every
// library runs every workload configuration, in an order rotated from round
// to round. Writes benchmark/RESULTS.md with the medians over the rounds.
//
// Everything is bounded in time: each measurement has its own limit, and a
// watchdog ends the whole run (killing redis-server and the child
// processes) if it takes far longer than planned.

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const Redis = require('ioredis')
const { startRedis } = require('../__test__/helpers/redis-server.js')
const { LIBRARIES } = require('./adapters.js')
const { killAll } = require('./children.js')
const { Results, render } = require('./report.js')
const { rotate } = require('./stats.js')
const w1 = require('./w1-sequential.js')
const w2 = require('./w2-parallel.js')
const w3 = require('./w3-one-process.js')
const w4 = require('./w4-processes.js')
const w5 = require('./w5-handoff.js')

const quick = process.argv.slice(2).includes('--quick')

const PARAMS = quick
  ? { rounds: 1, ttl: 10_000, w1: 300, w1Warmup: 50, w2: 500, w2Warmup: 150, w3: 400, w4: 500, w5: 10, watchdogMs: 4 * 60_000 }
  : { rounds: 3, ttl: 10_000, w1: 1000, w1Warmup: 200, w2: 1500, w2Warmup: 300, w3: 1000, w4: 1000, w5: 30, watchdogMs: 20 * 60_000 }

const NO_CONTENTION = [{ label: '', retryDelay: 50 }]
const CONTENTION = [
  { label: 'retryDelay 50 ms', retryDelay: 50 },
  { label: 'retryDelay 5 ms', retryDelay: 5 },
]

// What each workload runs: its module, configurations, and its arguments.
const WORKLOADS = [
  { id: 'w1', mod: w1, configs: NO_CONTENTION, args: () => ({ slices: PARAMS.w1 / 100, sliceMs: 100, warmup: PARAMS.w1Warmup }) },
  { id: 'w2', mod: w2, configs: NO_CONTENTION, args: () => ({ slices: PARAMS.w2 / 250, sliceMs: 250, warmup: PARAMS.w2Warmup, inflight: 200 }) },
  { id: 'w3', mod: w3, configs: CONTENTION, args: () => ({ duration: PARAMS.w3 }) },
  { id: 'w4', mod: w4, configs: CONTENTION, args: () => ({ duration: PARAMS.w4 }) },
  { id: 'w5', mod: w5, configs: CONTENTION, args: () => ({ count: PARAMS.w5 }) },
]

function version(pkg) {
  try {
    const file = path.join(__dirname, '..', 'node_modules', pkg, 'package.json')
    return JSON.parse(fs.readFileSync(file, 'utf8')).version.replace(/^v/, '')
  } catch {
    return null
  }
}

/** Which dist-lock was measured: the addon's hash and time, the commit, uncommitted changes. */
function distLockBuild() {
  const root = path.join(__dirname, '..')
  const parts = []
  const addon = fs.readdirSync(root).find((f) => /^dist-lock\..*\.node$/.test(f))
  if (addon) {
    const file = path.join(root, addon)
    const hash = require('node:crypto').createHash('sha256').update(fs.readFileSync(file)).digest('hex').slice(0, 12)
    parts.push(`addon ${addon} sha256 ${hash}… built ${fs.statSync(file).mtime.toISOString()}`)
  }
  try {
    const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = git('status', '--porcelain', '--', 'src', 'index.js', 'lib', 'binding.js').length > 0
    parts.push(`commit ${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes to src/, index.js, lib/ or binding.js' : ''}`)
  } catch {
    // not a git checkout
  }
  return parts.join('; ')
}

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

let server = null
let admin = null
let stopping = false

async function cleanUp() {
  stopping = true
  await w4.stopPool().catch(() => {})
  await killAll().catch(() => {})
  if (admin) admin.disconnect()
  admin = null
  if (server) await server.stop().catch(() => {})
  server = null
}

async function main() {
  const started = Date.now()
  const loadBefore = os.loadavg()
  const build = distLockBuild()
  server = await startRedis()
  if (server.port === 6379) throw new Error('refusing to use port 6379')
  const url = server.url
  admin = new Redis(url)
  const redisVersion = /redis_version:(\S+)/.exec(await admin.info('server'))[1]
  console.log(`dist-lock benchmark (${quick ? 'quick' : 'full'}): redis-server ${redisVersion} on port ${server.port}, ${PARAMS.rounds} round(s)`)
  console.log(`libraries: ${LIBRARIES.map((l) => l.name).join(', ')}`)

  const results = new Results(LIBRARIES)
  let mismatch = false
  for (let round = 0; round < PARAMS.rounds; round++) {
    for (const w of WORKLOADS) {
      for (const config of w.configs) {
        if (stopping) throw new Error('stopped')
        const libs = rotate(LIBRARIES, round)
        const key = `bench:r${round}:${w.id}:${config.retryDelay}`
        const args = { url, admin, ttl: PARAMS.ttl, retryDelay: config.retryDelay, ...w.args() }
        const what = `${w.id.toUpperCase()}${config.label ? ` ${config.label}` : ''}`
        const record = (lib, r) => {
          results.add(w.id, config.label, lib.id, r)
          console.log(`[round ${round + 1}] ${what.padEnd(20)} ${lib.name.padEnd(22)} ${summary(w.id, r)}`)
          if (w.id === 'w4' && !r.error && !r.counterOk) {
            mismatch = true
            console.error(`\n!!!!! CORRECTNESS FAILURE: W4 ${lib.name} ${config.label}: counter ${r.counter}, but ${r.totalGrants} grants !!!!!\n`)
          }
          if (r.overlaps > 0) {
            mismatch = true
            console.error(`\n!!!!! CORRECTNESS FAILURE: ${what} ${lib.name}: ${r.overlaps} overlapping grants !!!!!\n`)
          }
        }
        if (w.mod.runRound) {
          // The workload interleaves the libraries itself.
          let byLib
          try {
            byLib = await w.mod.runRound({ libs, key, ...args })
          } catch (err) {
            byLib = Object.fromEntries(libs.map((l) => [l.id, { error: err.message }]))
          }
          for (const lib of libs) record(lib, byLib[lib.id])
          continue
        }
        for (const lib of libs) {
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
  }

  const elapsed = (Date.now() - started) / 1000
  const versions = ['ioredis', 'redlock', 'redlock5', 'redis-semaphore']
    .map((p) => [p, version(p)])
    .filter(([, v]) => v)
    .map(([p, v]) => `${p === 'redlock5' ? 'redlock (5 beta)' : p} ${v}`)
    .concat([`dist-lock ${require('../package.json').version}`])
    .join(', ')
  const meta = {
    quick,
    cpu: os.cpus()[0].model,
    cores: os.cpus().length,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    redis: redisVersion,
    date: new Date().toISOString(),
    rounds: PARAMS.rounds,
    elapsed: `${Math.round(elapsed)} s`,
    load: `${loadBefore.map((l) => l.toFixed(2)).join(' / ')} at the start, ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')} at the end`,
    versions,
    build,
    buildAfter: distLockBuild(),
    params: PARAMS,
  }
  const file = path.join(__dirname, 'RESULTS.md')
  fs.writeFileSync(file, `${render({ meta, results })}\n`)
  console.log(`\nwrote ${path.relative(process.cwd(), file)} (${Math.round(elapsed)} s)`)
  if (mismatch) {
    console.error('\n!!!!! The run found a CORRECTNESS FAILURE (see above and RESULTS.md) !!!!!')
    process.exitCode = 1
  }
}

const watchdog = setTimeout(() => {
  console.error(`benchmark: still running after ${PARAMS.watchdogMs / 1000} s, stopping`)
  cleanUp().finally(() => process.exit(2))
}, PARAMS.watchdogMs)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`benchmark: ${signal}, stopping`)
    cleanUp().finally(() => process.exit(130))
  })
}

main()
  .catch((err) => {
    console.error('benchmark failed:', err)
    process.exitCode = 1
  })
  .finally(async () => {
    await cleanUp()
    clearTimeout(watchdog)
    // Anything still pending (a timed-out measurement's library) must not
    // keep the process alive.
    setTimeout(() => process.exit(), 200).unref()
  })
