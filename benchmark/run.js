'use strict'

// `npm run bench [-- --quick] [-- --only single|topologies]`: dist-lock
// against its peers (a bare ioredis loop, redlock 4, redlock 5 beta if
// installed, redis-semaphore), in two parts:
//
// - single: on one redis-server that this run starts on a free port (never
//   6379) and stops at the end. Workloads W1–W5 (one file each), in rounds;
//   in each round every library runs every workload configuration, in an
//   order rotated from round to round.
// - topologies (benchmark/scale-out.js): W1–W3 against 5 independent
//   masters (Redlock) and a Redis Cluster of 3 masters, started for that
//   part and stopped at its end.
//
// Writes benchmark/RESULTS.md with the medians over the rounds. With
// `--only`, only that part runs, and only its part of RESULTS.md is
// replaced (the other is kept as it was); the notes at its end (report.js,
// NOTES_HEADING) are always kept.
//
// A partial run, for a check after a change (see benchmark/README.md):
//
//   npm run bench -- --baseline <dir> --only w1,w2,w5 [--rounds N] [--out <file>]
//
// `--only` with workload ids runs only those single-server workloads;
// `--baseline <dir>`: another checkout of dist-lock with its addon built,
// measured as the extra rows "dist-lock (baseline)" and "dist-lock fair
// (baseline)", interleaved like the others (benchmark/adapters.js). Such a
// run prints its report (benchmark/compare.js: this build ÷ the baseline
// build) and writes it to `--out` if given; it leaves RESULTS.md as it is.
// `--rounds N` replaces the number of rounds (3 full, 1 quick).
//
// Everything is bounded in time: each measurement has its own limit, and a
// watchdog ends the whole run (killing every redis-server and child process
// it started) if it takes far longer than planned.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const Redis = require('ioredis')
const { startRedis } = require('../__test__/helpers/redis-server.js')
const { LIBRARIES, BASELINE_ENV, baselineAdapters } = require('./adapters.js')
const { renderPartial } = require('./compare.js')
const { killAll } = require('./children.js')
const { machine, versions, distLockBuild } = require('./meta.js')
const { Results, render, renderScaleOut, splitResults } = require('./report.js')
const { runRound } = require('./rounds.js')
const { runScaleOut, stopScaleOut, killScaleOutNow } = require('./scale-out.js')
const w1 = require('./w1-sequential.js')
const w2 = require('./w2-parallel.js')
const w3 = require('./w3-one-process.js')
const w4 = require('./w4-processes.js')
const w5 = require('./w5-handoff.js')

const PARTS = ['single', 'topologies']
const WORKLOAD_IDS = ['w1', 'w2', 'w3', 'w4', 'w5']
const USAGE = `known: --quick, --only ${PARTS.join('|')}|<workloads, e.g. w1,w2,w5>, --baseline <dir>, --rounds <n>, --out <file>`

/** `dir` if it is another checkout of dist-lock with its addon built; throws otherwise. */
function baselineDir(dir) {
  const abs = path.resolve(dir)
  const pkg = path.join(abs, 'package.json')
  if (!fs.existsSync(pkg) || JSON.parse(fs.readFileSync(pkg, 'utf8')).name !== 'dist-lock') {
    throw new Error(`--baseline ${dir}: not a checkout of dist-lock (no package.json named dist-lock)`)
  }
  if (!fs.existsSync(path.join(abs, 'binding.js')) || !fs.readdirSync(abs).some((f) => /^dist-lock\..*\.node$/.test(f))) {
    throw new Error(`--baseline ${dir}: its addon is not built (run \`npm run build\` there)`)
  }
  if (fs.realpathSync(abs) === fs.realpathSync(path.join(__dirname, '..'))) {
    throw new Error(`--baseline ${dir}: this checkout itself; give another checkout (e.g. a clone at the commit before the change)`)
  }
  return abs
}

function parseArgs(argv) {
  const out = { quick: false, only: null, workloads: null, baseline: null, rounds: null, out: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const [name, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, null]
    const value = () => {
      const v = inline ?? argv[++i]
      if (v === undefined) throw new Error(`${name} needs a value (${USAGE})`)
      return v
    }
    if (name === '--quick') out.quick = true
    else if (name === '--only') {
      const v = value()
      const items = v.split(',').map((x) => x.trim().toLowerCase())
      if (items.length === 1 && PARTS.includes(items[0])) out.only = items[0]
      else if (items.every((x) => WORKLOAD_IDS.includes(x))) {
        out.only = 'single'
        out.workloads = WORKLOAD_IDS.filter((x) => items.includes(x))
      } else throw new Error(`--only takes one of ${PARTS.join(', ')} or a list of workloads among ${WORKLOAD_IDS.join(',')}, got ${JSON.stringify(v)}`)
    } else if (name === '--baseline') out.baseline = baselineDir(value())
    else if (name === '--rounds') {
      out.rounds = Number(value())
      if (!Number.isInteger(out.rounds) || out.rounds < 1 || out.rounds > 20) throw new Error('--rounds takes an integer from 1 to 20')
    } else if (name === '--out') out.out = path.resolve(value())
    else throw new Error(`unknown argument ${JSON.stringify(a)} (${USAGE})`)
  }
  if (out.baseline && out.only === 'topologies') throw new Error('--baseline measures the single-server workloads, not the topologies')
  // A baseline run is a single-server run.
  if (out.baseline && out.only === null) out.only = 'single'
  return out
}

let cli
try {
  cli = parseArgs(process.argv.slice(2))
} catch (err) {
  console.error(`benchmark: ${err.message}`)
  process.exit(1)
}
const { quick, only } = cli
const runs = (part) => only === null || only === part
// A partial run: some workloads only, or a baseline build beside this one.
const partial = cli.workloads !== null || cli.baseline !== null

const PARAMS = quick
  ? { rounds: 1, ttl: 10_000, w1: 300, w1Warmup: 50, w2: 500, w2Warmup: 150, w3: 400, w4: 500, w5: 10 }
  : { rounds: 3, ttl: 10_000, w1: 1000, w1Warmup: 200, w2: 1500, w2Warmup: 300, w3: 1000, w4: 1000, w5: 30 }
const defaultRounds = PARAMS.rounds
if (cli.rounds !== null) PARAMS.rounds = cli.rounds
// The watchdog: far longer than the parts take (quick about 40 s + 70 s,
// full about 3 + 6 min on a 2-core machine), scaled by the rounds asked for
// and the rows added by a baseline build.
const scale = (Math.max(PARAMS.rounds, defaultRounds) / defaultRounds) * (cli.baseline ? 1.5 : 1)
const WATCHDOG_MS = Math.ceil(scale * ((runs('single') ? 1 : 0) * (quick ? 3 : 12) * 60_000 + (runs('topologies') ? 1 : 0) * (quick ? 3 : 12) * 60_000))

// The W2 children create their library by id: they find the baseline build
// in the environment they inherit.
if (cli.baseline) process.env[BASELINE_ENV] = cli.baseline
// The rows of the single-server part: the baseline build's beside this one's.
const LIBS = (() => {
  const extra = baselineAdapters(cli.baseline ?? undefined)
  const at = LIBRARIES.findIndex((l) => l.id === 'dist-lock-fair') + 1
  return [...LIBRARIES.slice(0, at), ...extra, ...LIBRARIES.slice(at)]
})()

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
].filter((w) => cli.workloads === null || cli.workloads.includes(w.id))

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
  await stopScaleOut().catch(() => {})
}

/** SIGKILLs every redis-server and child process this run started, synchronously. */
function killNow() {
  const proc = server && server.proc
  if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
  killAll().catch(() => {}) // sends SIGKILL to every child at once
  killScaleOutNow()
}

const isStopping = () => stopping

/** The single-server part: W1–W5 on one redis-server. */
async function runSingle() {
  const started = Date.now()
  const loadBefore = os.loadavg()
  const build = distLockBuild()
  server = await startRedis()
  if (server.port === 6379) throw new Error('refusing to use port 6379')
  const url = server.url
  admin = new Redis(url)
  const redisVersion = /redis_version:(\S+)/.exec(await admin.info('server'))[1]
  console.log(`dist-lock benchmark (${quick ? 'quick' : 'full'}): redis-server ${redisVersion} on port ${server.port}, ${PARAMS.rounds} round(s)`)
  console.log(`libraries: ${LIBS.map((l) => l.name).join(', ')}; workloads: ${WORKLOADS.map((w) => w.id).join(', ')}`)

  const results = new Results(LIBS)
  let mismatch = false
  for (let round = 0; round < PARAMS.rounds; round++) {
    const bad = await runRound({ round, libs: LIBS, workloads: WORKLOADS, url, admin, ttl: PARAMS.ttl, results, isStopping })
    mismatch = mismatch || bad
  }

  const elapsed = (Date.now() - started) / 1000
  await w4.stopPool().catch(() => {})
  admin.disconnect()
  admin = null
  await server.stop()
  server = null
  const meta = {
    ...machine(loadBefore),
    quick,
    only: only !== null,
    redis: redisVersion,
    rounds: PARAMS.rounds,
    elapsed: `${Math.round(elapsed)} s`,
    versions: versions(),
    build,
    buildAfter: distLockBuild(),
    baselineBuild: cli.baseline ? distLockBuild(cli.baseline) : null,
    workloads: WORKLOADS.map((w) => w.id.toUpperCase()),
    command: `npm run bench -- ${process.argv.slice(2).map((a, i, all) => (all[i - 1] === '--baseline' ? '<dir>' : a.replace(/^--baseline=.*/, '--baseline=<dir>'))).join(' ')}`,
    params: PARAMS,
  }
  return { meta, results, mismatch }
}

/** The scale-out section's text when the part failed before it had results. */
function failedScaleOut(err) {
  return [
    '## Scale-out: not measured',
    '',
    `The run (\`npm run bench${only ? ' -- --only topologies' : ''}${quick ? `${only ? '' : ' --'} --quick` : ''}\`, ${new Date().toISOString()}) could not measure the scale-out topologies: ${String(err && err.message ? err.message : err).split('\n')[0]}`,
  ].join('\n')
}

async function main() {
  const started = Date.now()
  const file = path.join(__dirname, 'RESULTS.md')
  const before = fs.existsSync(file) ? splitResults(fs.readFileSync(file, 'utf8')) : { single: null, scaleOut: null, notes: null }
  let failed = false

  if (partial) {
    const r = await runSingle()
    const text = renderPartial(r)
    console.log(`\n${text}`)
    if (cli.out) {
      fs.writeFileSync(cli.out, text)
      console.log(`wrote ${path.relative(process.cwd(), cli.out)}`)
    }
    console.log(`(${Math.round((Date.now() - started) / 1000)} s; RESULTS.md not changed)`)
    if (r.mismatch) {
      console.error('\n!!!!! The run found a CORRECTNESS FAILURE (see above) !!!!!')
      process.exitCode = 1
    }
    return
  }

  let single = before.single ?? '# dist-lock benchmark results\n\n(The single-server part has not been run yet: `npm run bench -- --only single`.)'
  if (runs('single')) {
    const r = await runSingle()
    single = render(r)
    if (r.mismatch) failed = true
  }

  let scaleOut = before.scaleOut
  if (runs('topologies')) {
    try {
      const r = await runScaleOut({ workloads: WORKLOADS.filter((w) => ['w1', 'w2', 'w3'].includes(w.id)), params: PARAMS, quick, only: only !== null, isStopping })
      scaleOut = renderScaleOut(r)
      if (r.mismatch) failed = true
    } catch (err) {
      if (stopping) throw err
      console.error('benchmark: the scale-out part failed:', err)
      scaleOut = failedScaleOut(err)
      process.exitCode = 1
    }
  }

  fs.writeFileSync(file, `${[single, scaleOut, before.notes].filter(Boolean).map((part) => part.trimEnd()).join('\n\n')}\n`)
  const elapsed = Math.round((Date.now() - started) / 1000)
  console.log(`\nwrote ${path.relative(process.cwd(), file)} (${elapsed} s${only ? `, only the ${only} part replaced` : ''})`)
  if (failed) {
    console.error('\n!!!!! The run found a CORRECTNESS FAILURE (see above and RESULTS.md) !!!!!')
    process.exitCode = 1
  }
}

const watchdog = setTimeout(() => {
  console.error(`benchmark: still running after ${WATCHDOG_MS / 1000} s, stopping`)
  killNow()
  cleanUp().finally(() => process.exit(2))
}, WATCHDOG_MS)

// Killed at once, not after the asynchronous clean-up: the tests' topology
// harness, if it started servers, re-raises the signal after this listener.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    console.error(`benchmark: ${signal}, stopping`)
    killNow()
    cleanUp().finally(() => process.exit(130))
  })
}
process.on('exit', killNow)

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
