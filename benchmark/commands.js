'use strict'

// Counting the commands Redis ran in a measured phase: `CONFIG RESETSTAT`
// before it, `INFO commandstats` after it. The counts include the commands
// that Lua scripts run (`redis.call`), as Redis counts them; the commands
// the benchmark sends to measure (INFO, CONFIG) are left out.

const MEASURING = new Set(['info', 'config'])

async function resetStats(admin) {
  await admin.call('CONFIG', 'RESETSTAT')
}

/** `{ command: calls }` from `INFO commandstats` ("client|setinfo" stays as is). */
async function commandStats(admin) {
  const text = await admin.call('INFO', 'commandstats')
  const calls = {}
  for (const line of String(text).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim())
    if (m) calls[m[1]] = Number(m[2])
  }
  return calls
}

/** The calls of everything but the measuring commands. */
function totalCalls(calls) {
  let total = 0
  for (const [name, n] of Object.entries(calls)) {
    if (!MEASURING.has(name.split('|')[0])) total += n
  }
  return total
}

/**
 * The client requests (round trips) among `calls`: the calls of the commands
 * that the library sends itself (`sent`, lower case, a parent command
 * matching its "parent|sub" entries); the other commands ran inside its
 * scripts.
 */
function requestCalls(calls, sent) {
  let total = 0
  for (const [name, n] of Object.entries(calls)) {
    if (sent.includes(name.split('|')[0])) total += n
  }
  return total
}

/** redis-server's CPU time so far (user + system), in µs. */
async function redisCpuUs(admin) {
  const text = String(await admin.call('INFO', 'cpu'))
  const field = (name) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)[1])
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6
}

module.exports = { resetStats, commandStats, totalCalls, requestCalls, redisCpuUs }
