'use strict'

// The scale-out topologies of the benchmark (`npm run bench`, the
// "Scale-out" part): 5 independent masters for Redlock, and a Redis Cluster
// of 3 masters without replicas. Every server is a redis-server of its own
// on a free loopback port, without persistence (`--save '' --appendonly
// no`); cluster nodes have `--cluster-enabled yes`, a `nodes.conf` in a
// folder of their own and `--cluster-node-timeout 2000`, are joined with
// `redis-cli --cluster create ... --cluster-yes`, and are used once every
// node says `cluster_state:ok`.
//
// The servers come from the tests' topology harness
// (__test__/helpers/topology.js) when it is there and works; otherwise from
// the small local implementation below (Redis 7 or later: it gives each node
// a cluster-bus port of its own). `BENCH_LOCAL_TOPOLOGIES=1` in the
// environment skips the harness.
//
// Only the servers started here are ever stopped: by `stop()`, or at once
// by `killNow()` (SIGKILL, synchronous, for a signal or the watchdog). The
// Redis on port 6379 is never used.
//
// Also here: `FanOutAdmin`, the measuring connection of a topology. The
// workload modules count Redis commands and Redis CPU through one `admin`
// (benchmark/commands.js: CONFIG RESETSTAT, INFO commandstats, INFO cpu);
// this one sends those to every node and sums the answers, so the counts
// and the CPU are the whole topology's.

const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const Redis = require('ioredis')
const { RedisServer, freePort } = require('../__test__/helpers/redis-server.js')

const REDLOCK_MASTERS = 5
const CLUSTER_MASTERS = 3
const FORBIDDEN_PORT = 6379
const READY_TIMEOUT_MS = 30_000

/** Every RedisServer started for the benchmark (the harness's and ours). */
const started = new Set()
/** Folders made by the local implementation. */
const folders = new Set()

function checkPorts(servers, what) {
  for (const s of servers) {
    if (s.port === FORBIDDEN_PORT) throw new Error(`${what}: refusing to use port ${FORBIDDEN_PORT}`)
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// ---------------------------------------------------------------------------
// The tests' harness, if present

function loadHarness() {
  if (process.env.BENCH_LOCAL_TOPOLOGIES === '1') return null
  const file = path.join(__dirname, '..', '__test__', 'helpers', 'topology.js')
  if (!fs.existsSync(file)) return null
  const harness = require(file)
  if (typeof harness.startMasters !== 'function' || typeof harness.startCluster !== 'function') return null
  return harness
}

async function harnessMasters(harness, n) {
  const servers = await harness.startMasters(n)
  for (const s of servers) started.add(s)
  return { urls: servers.map((s) => s.url), ports: servers.map((s) => s.port), servers }
}

async function harnessCluster(harness, masters) {
  const cluster = await harness.startCluster({ masters, replicasPerMaster: 0, readyTimeoutMs: READY_TIMEOUT_MS })
  const servers = cluster.nodes.map((n) => n.server)
  for (const s of servers) started.add(s)
  return { urls: cluster.urls, ports: servers.map((s) => s.port), servers }
}

// ---------------------------------------------------------------------------
// The local implementation

/** `n` free loopback ports, distinct from each other and from `taken`. */
async function freePorts(n, taken) {
  const out = []
  for (let tries = 0; out.length < n; tries++) {
    if (tries > 50 * n) throw new Error(`could not find ${n} distinct free ports`)
    const port = await freePort()
    if (port !== FORBIDDEN_PORT && !taken.has(port)) {
      taken.add(port)
      out.push(port)
    }
  }
  return out
}

async function localMasters(n) {
  const servers = []
  for (const port of await freePorts(n, new Set())) {
    const server = new RedisServer({ port })
    started.add(server)
    servers.push(server)
    await server.start()
  }
  return { urls: servers.map((s) => s.url), ports: servers.map((s) => s.port), servers }
}

/** Runs a program without blocking the event loop, killed after `timeoutMs`. */
function run(program, args, timeoutMs) {
  return new Promise((resolve) => {
    execFile(program, args, { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) =>
      resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }),
    )
  })
}

async function localCluster(masters) {
  const taken = new Set()
  const ports = await freePorts(masters, taken)
  const busPorts = await freePorts(masters, taken)
  const servers = []
  for (const [i, port] of ports.entries()) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-bench-cluster-'))
    folders.add(dir)
    const server = new RedisServer({
      port,
      args: [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', path.join(dir, 'nodes.conf'),
        '--cluster-node-timeout', '2000',
        '--cluster-port', String(busPorts[i]),
      ],
    })
    server.dir = dir // its --dir too
    started.add(server)
    servers.push(server)
    await server.start()
  }
  const created = await run(
    'redis-cli',
    ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
    60_000,
  )
  if (created.code !== 0 || !/All 16384 slots covered/.test(created.stdout)) {
    throw new Error(`redis-cli --cluster create failed (${created.code}):\n${created.stdout}\n${created.stderr}`)
  }
  // Every node: state ok and every node known.
  const clients = servers.map((s) => new Redis(s.url, { lazyConnect: true, maxRetriesPerRequest: 1 }))
  try {
    const deadline = Date.now() + READY_TIMEOUT_MS
    let last = ''
    for (;;) {
      try {
        const infos = await Promise.all(clients.map((c) => c.call('CLUSTER', 'INFO')))
        const ok = infos.every(
          (text) => /cluster_state:ok/.test(text) && Number(/cluster_known_nodes:(\d+)/.exec(text)?.[1]) >= masters,
        )
        if (ok) break
        last = infos.map((t) => /cluster_state:(\w+)/.exec(t)?.[1]).join(', ')
      } catch (err) {
        last = err.message
      }
      if (Date.now() > deadline) throw new Error(`cluster_state:ok on every node not reached within ${READY_TIMEOUT_MS} ms (last: ${last})`)
      await sleep(100)
    }
  } finally {
    for (const c of clients) c.disconnect()
  }
  return { urls: servers.map((s) => s.url), ports, servers }
}

// ---------------------------------------------------------------------------
// Starting and stopping

/**
 * Starts a topology with the harness, or the local implementation if the
 * harness is missing or fails. `kind` is 'masters' or 'cluster'.
 * Resolves with `{ urls, ports, servers, source }`.
 */
async function startOne(kind, n, log) {
  let harness = null
  try {
    harness = loadHarness()
  } catch (err) {
    log(`topologies: the test harness does not load (${err.message.split('\n')[0]}); using the local implementation`)
  }
  if (harness) {
    try {
      const t = kind === 'masters' ? await harnessMasters(harness, n) : await harnessCluster(harness, n)
      checkPorts(t.servers, kind)
      return { ...t, source: 'harness' }
    } catch (err) {
      if (/refusing to use port/.test(err.message)) throw err
      log(`topologies: the test harness failed to start ${kind} (${err.message.split('\n')[0]}); using the local implementation`)
    }
  }
  const t = kind === 'masters' ? await localMasters(n) : await localCluster(n)
  checkPorts(t.servers, kind)
  return { ...t, source: 'local' }
}

/**
 * Starts the 5 masters and the 3-master cluster. Resolves with
 * `{ masters, cluster }`, each `{ urls, ports, servers, source }`.
 */
async function startTopologies({ log = console.log } = {}) {
  const masters = await startOne('masters', REDLOCK_MASTERS, log)
  const cluster = await startOne('cluster', CLUSTER_MASTERS, log)
  return { masters, cluster }
}

/** Stops every server started here and removes the local folders. */
async function stopTopologies() {
  const servers = [...started]
  started.clear()
  await Promise.all(servers.map((s) => s.stop().catch(() => {})))
  for (const dir of folders) fs.rmSync(dir, { recursive: true, force: true })
  folders.clear()
}

/** SIGKILLs every server started here, synchronously (a signal, the watchdog). */
function killNow() {
  for (const s of started) {
    const proc = s.proc
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      try {
        proc.kill('SIGKILL')
      } catch {
        // already gone
      }
    }
  }
}

process.on('exit', () => {
  killNow()
  for (const dir of folders) fs.rmSync(dir, { recursive: true, force: true })
})

// ---------------------------------------------------------------------------
// Measuring a whole topology

/**
 * An `admin` for benchmark/commands.js over every node of a topology:
 * `call('CONFIG', 'RESETSTAT')` goes to every node; `call('INFO',
 * 'commandstats')` and `call('INFO', 'cpu')` answer with the sums over the
 * nodes, in INFO's own format.
 */
class FanOutAdmin {
  constructor(urls) {
    this.clients = urls.map((url) => new Redis(url, { maxRetriesPerRequest: 2 }))
  }

  async call(command, ...args) {
    const replies = await Promise.all(this.clients.map((c) => c.call(command, ...args)))
    const what = [command, ...args].join(' ').toUpperCase()
    if (what === 'CONFIG RESETSTAT') return 'OK'
    if (what === 'INFO COMMANDSTATS') {
      const calls = new Map()
      for (const text of replies) {
        for (const line of String(text).split('\n')) {
          const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim())
          if (m) calls.set(m[1], (calls.get(m[1]) || 0) + Number(m[2]))
        }
      }
      return ['# Commandstats', ...[...calls].map(([name, n]) => `cmdstat_${name}:calls=${n}`)].join('\r\n')
    }
    if (what === 'INFO CPU') {
      const sum = (field) =>
        replies.reduce((total, text) => total + Number(new RegExp(`^${field}:([\\d.]+)`, 'm').exec(String(text))[1]), 0)
      return ['# CPU', `used_cpu_user:${sum('used_cpu_user')}`, `used_cpu_sys:${sum('used_cpu_sys')}`].join('\r\n')
    }
    if (what === 'INFO SERVER') return replies[0]
    throw new Error(`FanOutAdmin: "${what}" is not summed over the nodes`)
  }

  info(section) {
    return this.call('INFO', section)
  }

  disconnect() {
    for (const c of this.clients) c.disconnect()
  }
}

module.exports = { startTopologies, stopTopologies, killNow, FanOutAdmin, REDLOCK_MASTERS, CLUSTER_MASTERS }
