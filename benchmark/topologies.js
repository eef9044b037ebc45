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
// (__test__/helpers/topology.js), as the single-server part's come from
// __test__/helpers/redis-server.js.
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

const Redis = require('ioredis')

const REDLOCK_MASTERS = 5
const CLUSTER_MASTERS = 3
const FORBIDDEN_PORT = 6379
const READY_TIMEOUT_MS = 30_000

/** Every RedisServer started for the benchmark. */
const started = new Set()

function checkPorts(servers, what) {
  for (const s of servers) {
    if (s.port === FORBIDDEN_PORT) throw new Error(`${what}: refusing to use port ${FORBIDDEN_PORT}`)
  }
}

// ---------------------------------------------------------------------------
// Starting and stopping

const harness = require('../__test__/helpers/topology.js')

/** Starts a topology: `kind` is 'masters' or 'cluster'. Resolves with `{ urls, ports, servers }`. */
async function startOne(kind, n) {
  let urls
  let servers
  if (kind === 'masters') {
    servers = await harness.startMasters(n)
    urls = servers.map((s) => s.url)
  } else {
    const cluster = await harness.startCluster({ masters: n, replicasPerMaster: 0, readyTimeoutMs: READY_TIMEOUT_MS })
    servers = cluster.nodes.map((node) => node.server)
    urls = cluster.urls
  }
  for (const s of servers) started.add(s)
  checkPorts(servers, kind)
  return { urls, ports: servers.map((s) => s.port), servers }
}

/**
 * Starts the 5 masters and the 3-master cluster. Resolves with
 * `{ masters, cluster }`, each `{ urls, ports, servers }`.
 */
async function startTopologies() {
  const masters = await startOne('masters', REDLOCK_MASTERS)
  const cluster = await startOne('cluster', CLUSTER_MASTERS)
  return { masters, cluster }
}

/** Stops every server started here. */
async function stopTopologies() {
  const servers = [...started]
  started.clear()
  await Promise.all(servers.map((s) => s.stop().catch(() => {})))
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

process.on('exit', killNow)

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
