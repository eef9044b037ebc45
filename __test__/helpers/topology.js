'use strict'

// Starts and stops real Redis topologies on free loopback ports, for the
// tests in __test__/topologies/: independent masters (Redlock), a Redis
// Cluster, and a master with a replica watched by Sentinels. Every server
// is a `redis-server` from PATH in a temporary folder of its own, without
// persistence (`--save '' --appendonly no`). Only the processes started here
// are ever stopped, by their handles: on `stop()`, and with SIGKILL when this
// process exits. Every wait is bounded and says what it waited for.
//
//   const { startMasters, startCluster, startSentinel } = require('./topology.js')
//   const masters = await startMasters(5)          // [RedisServer, ...]
//   const cluster = await startCluster({ masters: 3, replicasPerMaster: 1 })
//   const sentinel = await startSentinel({ sentinels: 3 })

const { execFile, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { setTimeout: sleep } = require('node:timers/promises')
const { RedisServer, freePort } = require('./redis-server.js')

// ---------------------------------------------------------------------------
// What we started, and its cleanup

/** Every server object started here (RedisServer or SentinelServer). */
const owned = new Set()
/** Every folder made here. */
const folders = new Set()

function killOwned() {
  for (const server of owned) {
    const proc = server.proc
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      try {
        proc.kill('SIGKILL')
      } catch {
        // already gone
      }
    }
  }
}

let cleanupInstalled = false
function installCleanup() {
  if (cleanupInstalled) return
  cleanupInstalled = true
  process.on('exit', () => {
    killOwned()
    for (const dir of folders) fs.rmSync(dir, { recursive: true, force: true })
  })
  // A test run interrupted by a signal: kill our servers, then die of the
  // same signal (the listener is gone by then, so the default applies).
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      killOwned()
      process.kill(process.pid, signal)
    })
  }
}

function tempDir(label) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `dist-lock-${label}-`))
  folders.add(dir)
  return dir
}

/** Free loopback ports, distinct from each other and from `taken`. */
async function freePorts(n, taken = new Set()) {
  const out = []
  for (let tries = 0; out.length < n; tries++) {
    if (tries > n * 20) throw new Error(`could not find ${n} distinct free ports`)
    const p = await freePort()
    if (!taken.has(p) && !out.includes(p)) out.push(p)
  }
  for (const p of out) taken.add(p)
  return out
}

/** A RedisServer that this module owns (killed at exit). */
async function startOwned(options) {
  installCleanup()
  const server = new RedisServer(options)
  owned.add(server)
  await server.start()
  return server
}

// ---------------------------------------------------------------------------
// redis-cli and waiting

const CLI_TIMEOUT_MS = 10_000

/** Error replies as redis-cli prints them when not on a terminal. */
const ERROR_REPLY =
  /^(ERR|WRONGTYPE|MOVED|ASK|CLUSTERDOWN|TRYAGAIN|CROSSSLOT|NOAUTH|NOPERM|READONLY|BUSY|BUSYKEY|LOADING|IOERR|NOSCRIPT|MASTERDOWN|NOREPLICAS|UNBLOCKED)\b/

/** `redis-cli -p port args...` (bounded), trimmed stdout. Throws if it cannot connect. */
function cli(port, ...args) {
  return execFileSync('redis-cli', ['-p', String(port), ...args.map(String)], {
    encoding: 'utf8',
    timeout: CLI_TIMEOUT_MS,
    killSignal: 'SIGKILL',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim()
}

/** As `cli`, but an error reply throws too. */
function cliOk(port, ...args) {
  const out = cli(port, ...args)
  if (ERROR_REPLY.test(out)) {
    throw new Error(`redis-cli -p ${port} ${args.join(' ')}: ${out}`)
  }
  return out
}

/** As `cli`, without blocking the event loop; resolves to { code, stdout, stderr }. */
function cliAsync(args, timeoutMs) {
  return new Promise((resolve) => {
    execFile(
      'redis-cli',
      args.map(String),
      { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? err.signal) : 0, stdout, stderr }),
    )
  })
}

/**
 * Calls `check()` every `intervalMs` until it returns a truthy value (which
 * is returned); a throw counts as "not yet". Rejects after `timeoutMs` with
 * `what` and the last value or error seen.
 */
async function waitUntil(check, { timeoutMs = 30_000, intervalMs = 100, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs
  let last
  for (;;) {
    try {
      const value = await check()
      if (value) return value
      last = value
    } catch (err) {
      last = err
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last)
      throw new Error(`${what}: not reached within ${timeoutMs} ms (last: ${detail})`)
    }
    await sleep(intervalMs)
  }
}

/** `INFO` text (or any "field:value" text) as an object. */
function fields(text) {
  const out = {}
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':')
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim()
  }
  return out
}

/** The flattened key/value lines redis-cli prints for a map reply, as an object. */
function pairs(lines) {
  const out = {}
  for (let i = 0; i + 1 < lines.length; i += 2) out[lines[i]] = lines[i + 1]
  return out
}

// ---------------------------------------------------------------------------
// Independent masters (Redlock)

/** `n` independent masters, each a RedisServer on a free port. */
async function startMasters(n) {
  const ports = await freePorts(n)
  const servers = []
  try {
    for (const port of ports) servers.push(await startOwned({ port }))
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()))
    throw err
  }
  return servers
}

// ---------------------------------------------------------------------------
// Redis Cluster

/**
 * One line of CLUSTER NODES: { id, port, flags, masterId, linkState,
 * slots: [[from, to], ...], myself, master }.
 */
function parseClusterNodes(text) {
  return text
    .split(/\r?\n/)
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [id, address, flags, masterId, , , , linkState, ...rest] = line.trim().split(/\s+/)
      const m = /:(\d+)@/.exec(address)
      const flagList = flags.split(',')
      const slots = []
      for (const s of rest) {
        if (s.startsWith('[')) continue // a migrating/importing marker
        const [a, b] = s.split('-').map(Number)
        slots.push([a, b === undefined ? a : b])
      }
      return {
        id,
        port: m ? Number(m[1]) : null,
        flags: flagList,
        masterId: masterId === '-' ? null : masterId,
        linkState,
        slots,
        markers: rest.filter((s) => s.startsWith('[')),
        myself: flagList.includes('myself'),
        master: flagList.includes('master'),
        failed: flagList.includes('fail') || flagList.includes('fail?'),
      }
    })
}

function ownsSlot(node, slot) {
  return node.slots.some(([a, b]) => slot >= a && slot <= b)
}

/**
 * A Redis Cluster of `masters` masters with `replicasPerMaster` replicas
 * each, every node on a free port with a free cluster-bus port. Resolves
 * once every node says `cluster_state:ok`, knows every other node, and every
 * replica is in sync with its master.
 *
 * Gives { nodes: [{ port, url, role, server }], urls, seedUrls, cli(port,
 * ...args), node(port), keySlot(key), slotOwner(key), slotOwnerOfSlot(slot),
 * replicaOf(masterPort), masterPorts(), migrateSlot(slot, fromPort, toPort),
 * failover(replicaPort), healthy(), view(port), stop() }.
 */
async function startCluster({ masters = 3, replicasPerMaster = 0, readyTimeoutMs = 30_000 } = {}) {
  if (masters < 3) throw new Error('redis-cli --cluster create needs at least 3 masters')
  const total = masters * (1 + replicasPerMaster)
  const taken = new Set()
  const ports = await freePorts(total, taken)
  const busPorts = await freePorts(total, taken)
  const servers = []
  const stopAll = () => Promise.all(servers.map((s) => s.stop()))
  try {
    for (const [i, port] of ports.entries()) {
      const dir = tempDir('cluster')
      const server = new RedisServer({
        port,
        args: [
          '--cluster-enabled', 'yes',
          '--cluster-config-file', path.join(dir, 'nodes.conf'),
          '--cluster-node-timeout', '2000',
          // Our own bus port: port + 10000 may be out of range or taken.
          '--cluster-port', String(busPorts[i]),
          '--repl-diskless-sync-delay', '0',
        ],
      })
      server.dir = dir
      installCleanup()
      owned.add(server)
      servers.push(server)
      await server.start()
    }
    const created = await cliAsync(
      [
        '--cluster', 'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas', String(replicasPerMaster),
        '--cluster-yes',
      ],
      60_000,
    )
    if (created.code !== 0 || !/All 16384 slots covered/.test(created.stdout)) {
      throw new Error(`redis-cli --cluster create failed (${created.code}):\n${created.stdout}\n${created.stderr}`)
    }
  } catch (err) {
    await stopAll()
    throw err
  }

  const nodes = servers.map((server) => ({
    port: server.port,
    url: server.url,
    server,
    role: 'master', // set below, kept up to date by failover()
  }))
  const byPort = new Map(nodes.map((n) => [n.port, n]))
  const live = () => nodes.filter((n) => n.server.proc !== null)

  /** Node `port`'s own view of the cluster. */
  const viewOf = (port) => parseClusterNodes(cliOk(port, 'CLUSTER', 'NODES'))
  const idOf = (port) => cliOk(port, 'CLUSTER', 'MYID')

  const refreshRoles = () => {
    for (const n of live()) {
      try {
        n.role = cli(n.port, 'ROLE').split(/\r?\n/)[0] === 'master' ? 'master' : 'replica'
      } catch {
        // down: keeps its last known role
      }
    }
  }

  /**
   * Every live node: state ok, all nodes known, slots assigned, replicas in
   * sync, and every node's view agrees with what each node says of itself
   * (its role and master): other masters refuse to vote for a replica they
   * still take for a master, so a failover needs this.
   */
  const healthy = () => {
    const views = new Map()
    for (const n of live()) {
      const info = fields(cliOk(n.port, 'CLUSTER', 'INFO'))
      if (info.cluster_state !== 'ok') return false
      if (Number(info.cluster_slots_assigned) !== 16384) return false
      if (Number(info.cluster_known_nodes) < live().length) return false
      const repl = fields(cliOk(n.port, 'INFO', 'replication'))
      if (repl.role === 'slave' && repl.master_link_status !== 'up') return false
      views.set(n.port, viewOf(n.port))
    }
    for (const [port, view] of views) {
      const self = view.find((v) => v.myself)
      if (!self) return false
      for (const other of views.values()) {
        const seen = other.find((v) => v.id === self.id)
        if (!seen || seen.failed || seen.master !== self.master || seen.masterId !== self.masterId) return false
      }
      if (self.port !== port) return false
    }
    return true
  }

  const stop = async () => {
    await stopAll()
  }

  try {
    await waitUntil(healthy, { timeoutMs: readyTimeoutMs, intervalMs: 200, what: 'cluster ready (cluster_state:ok on every node)' })
    refreshRoles()
  } catch (err) {
    await stopAll()
    throw err
  }

  /** The hash slot of `key`. */
  const keySlot = (key) => {
    for (const n of live()) {
      try {
        return Number(cliOk(n.port, 'CLUSTER', 'KEYSLOT', key))
      } catch {
        // try another node
      }
    }
    throw new Error('no live cluster node answered CLUSTER KEYSLOT')
  }

  /** The port of the master that serves `slot`, as the masters say of themselves. */
  const slotOwnerOfSlot = (slot) => {
    const claims = []
    const votes = new Map()
    for (const n of live()) {
      let view
      try {
        view = viewOf(n.port)
      } catch {
        continue
      }
      const me = view.find((v) => v.myself)
      if (me && me.master && ownsSlot(me, slot)) claims.push(n.port)
      const owner = view.find((v) => v.master && !v.failed && ownsSlot(v, slot))
      if (owner) votes.set(owner.port, (votes.get(owner.port) || 0) + 1)
    }
    if (claims.length === 1) return claims[0]
    // Ambiguous (a failover in progress): what most nodes believe.
    const best = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]
    if (best) return best[0]
    throw new Error(`no master serves slot ${slot}`)
  }

  const slotOwner = (key) => slotOwnerOfSlot(keySlot(key))

  /** The port of a live replica of the master on `masterPort`, or null. */
  const replicaOf = (masterPort) => {
    const masterId = idOf(masterPort)
    for (const n of live()) {
      if (n.port === masterPort) continue
      try {
        const me = viewOf(n.port).find((v) => v.myself)
        if (me && me.masterId === masterId) return n.port
      } catch {
        // down
      }
    }
    return null
  }

  /** Ports of the masters (live ones, as they say of themselves). */
  const masterPorts = () => {
    refreshRoles()
    return live()
      .filter((n) => n.role === 'master')
      .map((n) => n.port)
  }

  /**
   * Moves `slot` and its keys from the master on `fromPort` to the one on
   * `toPort`, as `redis-cli --cluster reshard` does: IMPORTING on the
   * target, MIGRATING on the source, MIGRATE of every key, then SETSLOT NODE
   * on every master. `whileMigrating()`, if given, is awaited once the keys
   * have moved and before ownership changes (the slot is then in its
   * migrating state: clients are sent from source to target with ASK).
   * Resolves once every master sees `toPort` as the slot's owner.
   */
  const migrateSlot = async (slot, fromPort, toPort, { whileMigrating, timeoutMs = 20_000 } = {}) => {
    const fromId = idOf(fromPort)
    const toId = idOf(toPort)
    const me = viewOf(fromPort).find((v) => v.myself)
    if (!me || !ownsSlot(me, slot)) throw new Error(`port ${fromPort} does not serve slot ${slot}`)
    cliOk(toPort, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId)
    cliOk(fromPort, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId)
    const deadline = Date.now() + timeoutMs
    let moved = 0
    for (;;) {
      const out = cliOk(fromPort, 'CLUSTER', 'GETKEYSINSLOT', slot, 100)
      const keys = out === '' ? [] : out.split(/\r?\n/)
      if (keys.length === 0) break
      if (Date.now() > deadline) throw new Error(`slot ${slot}: keys still on ${fromPort} after ${timeoutMs} ms`)
      cliOk(fromPort, 'MIGRATE', '127.0.0.1', toPort, '', 0, 5000, 'KEYS', ...keys)
      moved += keys.length
    }
    if (whileMigrating) await whileMigrating()
    // The target first, then the source, then everyone else.
    const others = masterPorts().filter((p) => p !== fromPort && p !== toPort)
    for (const port of [toPort, fromPort, ...others]) {
      cliOk(port, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId)
    }
    await waitUntil(
      () =>
        masterPorts().every((port) => {
          const view = viewOf(port)
          const owner = view.find((v) => v.master && ownsSlot(v, slot))
          const mine = view.find((v) => v.myself)
          return owner && owner.id === toId && mine.markers.length === 0
        }) && Number(cliOk(fromPort, 'CLUSTER', 'COUNTKEYSINSLOT', slot)) === 0,
      { timeoutMs, intervalMs: 100, what: `slot ${slot} owned by ${toPort} on every master` },
    )
    return { slot, from: fromPort, to: toPort, keys: moved }
  }

  /**
   * CLUSTER FAILOVER on the replica on `replicaPort`; resolves once it is a
   * master, its old master is a replica, and the cluster is healthy again.
   */
  const failover = async (replicaPort, { timeoutMs = 30_000 } = {}) => {
    const me = viewOf(replicaPort).find((v) => v.myself)
    if (!me || me.master) throw new Error(`port ${replicaPort} is not a replica`)
    const oldMaster = viewOf(replicaPort).find((v) => v.id === me.masterId)
    await waitUntil(() => fields(cliOk(replicaPort, 'INFO', 'replication')).master_link_status === 'up', {
      timeoutMs: 10_000,
      what: `replica ${replicaPort} in sync before the failover`,
    })
    const started = Date.now()
    cliOk(replicaPort, 'CLUSTER', 'FAILOVER')
    let lastAsk = started
    await waitUntil(
      () => {
        if (cli(replicaPort, 'ROLE').split(/\r?\n/)[0] === 'master') return true
        // A manual failover gives up after 5 s (cluster-mf-timeout): ask again.
        if (Date.now() - lastAsk > 8_000) {
          lastAsk = Date.now()
          cliOk(replicaPort, 'CLUSTER', 'FAILOVER')
        }
        return false
      },
      { timeoutMs, intervalMs: 100, what: `replica ${replicaPort} promoted by CLUSTER FAILOVER` },
    )
    await waitUntil(
      () => {
        if (!healthy()) return false
        // Every live node agrees on the new master.
        return live().every((n) => {
          const view = viewOf(n.port)
          const promoted = view.find((v) => v.port === replicaPort)
          return promoted && promoted.master && !promoted.failed
        })
      },
      { timeoutMs, intervalMs: 100, what: `cluster healthy after the failover to ${replicaPort}` },
    )
    refreshRoles()
    return { promoted: replicaPort, demoted: oldMaster ? oldMaster.port : null, ms: Date.now() - started }
  }

  const urls = nodes.map((n) => n.url)
  return {
    nodes,
    /** Every node's URL. */
    urls,
    /** Seeds to give a cluster client: the first two masters (it discovers the rest). */
    seedUrls: nodes.filter((n) => n.role === 'master').slice(0, 2).map((n) => n.url),
    cli: (port, ...args) => cli(port, ...args),
    node: (port) => byPort.get(port),
    keySlot,
    slotOwner,
    slotOwnerOfSlot,
    replicaOf,
    masterPorts,
    migrateSlot,
    failover,
    healthy,
    view: viewOf,
    stop,
  }
}

// ---------------------------------------------------------------------------
// Sentinel

/** A `redis-server --sentinel` of our own, with its own folder and config file. */
class SentinelServer extends RedisServer {
  constructor({ port, config }) {
    super({ port })
    this.config = config
  }

  get what() {
    return 'redis-sentinel'
  }

  commandLine() {
    if (this.dir === undefined) {
      // Sentinel rewrites its config file: one folder each, written once
      // (a restart keeps what it learned).
      this.dir = tempDir('sentinel')
      this.configFile = path.join(this.dir, 'sentinel.conf')
      fs.writeFileSync(this.configFile, `port ${this.port}\nbind 127.0.0.1\ndir ${this.dir}\n${this.config}`)
    }
    return [this.configFile, '--sentinel']
  }

  cli(...args) {
    return cli(this.port, ...args)
  }
}

/**
 * A master, one replica of it, and `sentinels` Sentinels monitoring it as
 * `mymaster` (quorum 2, down after 1 s, failover timeout 3 s). Resolves once
 * every Sentinel knows the master, its replica, and the other Sentinels.
 *
 * Gives { master, replica, sentinels, sentinelUrls, masterName,
 * currentMasterPort(), currentMaster(), killMaster(), stop() }.
 */
async function startSentinel({ sentinels: count = 3, masterName = 'mymaster', readyTimeoutMs = 30_000 } = {}) {
  installCleanup()
  const started = []
  const stopAll = () => Promise.all(started.map((s) => s.stop()))
  let master
  let replica
  const sentinels = []
  try {
    master = await startOwned({ args: ['--repl-diskless-sync-delay', '0'] })
    started.push(master)
    replica = await startOwned({
      args: ['--replicaof', '127.0.0.1', String(master.port), '--repl-diskless-sync-delay', '0'],
    })
    started.push(replica)
    await waitUntil(() => fields(replica.cli('INFO', 'replication')).master_link_status === 'up', {
      timeoutMs: readyTimeoutMs,
      what: 'replica in sync with the master',
    })
    const quorum = Math.floor(count / 2) + 1
    const config = [
      'sentinel resolve-hostnames no',
      `sentinel monitor ${masterName} 127.0.0.1 ${master.port} ${quorum}`,
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 3000`,
      `sentinel parallel-syncs ${masterName} 1`,
      '',
    ].join('\n')
    for (const port of await freePorts(count)) {
      const s = new SentinelServer({ port, config })
      owned.add(s)
      started.push(s)
      sentinels.push(s)
      await s.start()
    }
    await waitUntil(
      () =>
        sentinels.every((s) => {
          const addr = s.cli('SENTINEL', 'get-master-addr-by-name', masterName).split(/\r?\n/)
          if (addr[1] !== String(master.port)) return false
          const m = pairs(s.cli('SENTINEL', 'MASTER', masterName).split(/\r?\n/))
          if (m.flags !== 'master' || Number(m['num-other-sentinels']) !== count - 1) return false
          const r = pairs(s.cli('SENTINEL', 'REPLICAS', masterName).split(/\r?\n/))
          return r.name === `127.0.0.1:${replica.port}` && r.flags === 'slave' && r['master-link-status'] === 'ok'
        }),
      { timeoutMs: readyTimeoutMs, intervalMs: 200, what: 'every Sentinel knows the master, its replica and the other Sentinels' },
    )
  } catch (err) {
    await stopAll()
    throw err
  }

  const servers = [master, replica]
  const liveSentinels = () => sentinels.filter((s) => s.proc !== null)

  /** The master's port, as the first Sentinel that answers says. */
  const currentMasterPort = () => {
    for (const s of liveSentinels()) {
      try {
        const [host, port] = s.cli('SENTINEL', 'get-master-addr-by-name', masterName).split(/\r?\n/)
        if (host && port) return Number(port)
      } catch {
        // try the next one
      }
    }
    throw new Error('no Sentinel answered get-master-addr-by-name')
  }

  /**
   * SIGKILLs the current master; resolves once every Sentinel names the
   * other server as the master and it says so itself.
   */
  const killMaster = async ({ timeoutMs = 30_000 } = {}) => {
    const port = currentMasterPort()
    const victim = servers.find((s) => s.port === port)
    const heir = servers.find((s) => s.port !== port && s.proc !== null)
    if (!victim || !heir) throw new Error(`no live replica to promote (master ${port})`)
    const t0 = Date.now()
    await victim.stop('SIGKILL')
    await waitUntil(
      () =>
        liveSentinels().every(
          (s) => s.cli('SENTINEL', 'get-master-addr-by-name', masterName).split(/\r?\n/)[1] === String(heir.port),
        ) && heir.cli('ROLE').split(/\r?\n/)[0] === 'master',
      { timeoutMs, intervalMs: 100, what: `Sentinels promote ${heir.port} after killing ${port}` },
    )
    return { killed: port, promoted: heir.port, ms: Date.now() - t0 }
  }

  return {
    master,
    replica,
    sentinels,
    sentinelUrls: sentinels.map((s) => s.url),
    masterName,
    currentMasterPort,
    /** The server object of the current master. */
    currentMaster: () => servers.find((s) => s.port === currentMasterPort()),
    killMaster,
    stop: stopAll,
  }
}

module.exports = {
  startMasters,
  startCluster,
  startSentinel,
  waitUntil,
  cli,
  cliOk,
  parseClusterNodes,
}
