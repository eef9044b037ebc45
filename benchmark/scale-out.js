'use strict'

// The "Scale-out" part of `npm run bench`: W1, W2 and W3 against 5
// independent masters (Redlock: dist-lock's array form against node-redlock
// 4 and 5 beta over 5 clients; ratios to node-redlock 4) and against a Redis
// Cluster of 3 masters (dist-lock's `{ cluster }` form against a bare SET NX
// loop over an ioredis Cluster client, the baseline, and node-redlock over
// that one Cluster client). The workload modules are the single-server
// ones; only the libraries (benchmark/adapters.js, TOPOLOGY_LIBRARIES), the
// target (the topology's node URLs) and the measuring connection (a
// FanOutAdmin over every node) differ.
//
// The topologies are started once for this part (benchmark/topologies.js)
// and stopped at its end, on failure, on a signal and by the watchdog
// (run.js calls `stopScaleOut()` / `killScaleOutNow()`).

const os = require('node:os')
const { TOPOLOGY_LIBRARIES } = require('./adapters.js')
const { machine, versions, distLockBuild } = require('./meta.js')
const { Results } = require('./report.js')
const { runRound } = require('./rounds.js')
const { startTopologies, stopTopologies, killNow, FanOutAdmin, REDLOCK_MASTERS, CLUSTER_MASTERS } = require('./topologies.js')

let admins = []

/**
 * Runs the part. `workloads`: run.js's W1, W2 and W3 entries; `params`: its
 * settings (rounds, ttl, durations). Resolves with `{ meta, groups,
 * mismatch }` for report.js's renderScaleOut.
 */
async function runScaleOut({ workloads, params, quick, only, isStopping }) {
  const started = Date.now()
  const loadBefore = os.loadavg()
  const build = distLockBuild()
  const topologies = await startTopologies()
  const startup = `${((Date.now() - started) / 1000).toFixed(1)} s`
  const groups = [
    {
      id: 'masters',
      title: `Redlock, ${REDLOCK_MASTERS} independent masters`,
      short: `Redlock ×${REDLOCK_MASTERS}`,
      baseline: 'redlock4-masters',
      setup: `${REDLOCK_MASTERS} redis-servers, each on its own; a lock needs a majority (${Math.floor(REDLOCK_MASTERS / 2) + 1})`,
      topology: topologies.masters,
    },
    {
      id: 'cluster',
      title: `Redis Cluster, ${CLUSTER_MASTERS} masters`,
      short: `Cluster ×${CLUSTER_MASTERS}`,
      baseline: 'bare-cluster',
      setup:
        `${CLUSTER_MASTERS} masters, no replicas, \`--cluster-node-timeout 2000\`, joined by \`redis-cli --cluster create\`; ` +
        'clients are given every node',
      topology: topologies.cluster,
    },
  ]
  for (const g of groups) {
    g.libs = TOPOLOGY_LIBRARIES[g.id]
    g.results = new Results(g.libs)
    g.admin = new FanOutAdmin(g.topology.urls)
    admins.push(g.admin)
  }
  const info = await groups[0].admin.call('INFO', 'server')
  const redis = /redis_version:(\S+)/.exec(info)[1]
  console.log(
    `scale-out: ${groups.map((g) => g.title).join('; ')}, ` +
      `started in ${startup}; ${params.rounds} round(s)`,
  )
  let mismatch = false
  for (let round = 0; round < params.rounds; round++) {
    for (const g of groups) {
      const bad = await runRound({
        tag: g.short,
        round,
        libs: g.libs,
        workloads,
        url: g.topology.urls,
        admin: g.admin,
        ttl: params.ttl,
        results: g.results,
        isStopping,
      })
      mismatch = mismatch || bad
    }
  }
  const elapsed = `${Math.round((Date.now() - started) / 1000)} s`
  await stopScaleOut()
  const meta = {
    ...machine(loadBefore),
    quick,
    only,
    redis,
    rounds: params.rounds,
    elapsed,
    startup,
    versions: versions(),
    build,
    buildAfter: distLockBuild(),
    params,
  }
  return { meta, groups, mismatch }
}

/** Disconnects the measuring connections and stops the topologies. */
async function stopScaleOut() {
  for (const a of admins) a.disconnect()
  admins = []
  await stopTopologies()
}

/** SIGKILLs the topologies' servers at once (a signal). */
function killScaleOutNow() {
  killNow()
}

module.exports = { runScaleOut, stopScaleOut, killScaleOutNow }
