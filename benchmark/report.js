'use strict'

// benchmark/RESULTS.md: the machine, one table per workload (each library's
// median over the rounds, its ratio to the bare ioredis loop, and dist-lock
// against the best peer), the targets, correctness checks, and where the
// Redis commands of a grant go.

const { median, max, ratio } = require('./stats.js')

const fmt = {
  int: (v) => Math.round(v).toLocaleString('en-US'),
  ms: (v) => (v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)),
  dec1: (v) => v.toFixed(1),
  dec2: (v) => v.toFixed(2),
  pct: (v) => `${(v * 100).toFixed(1)} %`,
  count: (v) => String(v),
}

const REFERENCE_NOTE =
  '*ioredis + dist-lock scripts* is a reference, not a library: dist-lock\'s own acquire and release scripts sent by a plain ioredis client, ' +
  'i.e. dist-lock\'s Redis work (fencing counter, release announcement) without its native core and thread crossing.'

// `agg`: how the rounds are combined (median by default; the worst round
// for the counts that must be 0). `ratio: false`: no ratio to the baseline.
const WORKLOADS = [
  {
    id: 'w1',
    title: 'W1: sequential acquire → release on one key',
    note:
      'One task, back to back; latency of a full acquire + release cycle. The libraries take turns in slices of 100 ms (rotated order), since sequential ' +
      'loopback round trips on this machine swing several-fold with the OS scheduler\'s state. ' +
      REFERENCE_NOTE,
    metrics: [
      { key: 'opsPerSec', label: 'ops/s', better: 'higher', fmt: fmt.int },
      { key: 'p50', label: 'cycle p50 ms', better: 'lower', fmt: fmt.ms },
      { key: 'p99', label: 'cycle p99 ms', better: 'lower', fmt: fmt.ms },
      { key: 'cmdsPerOp', label: 'Redis cmds/op', better: 'lower', fmt: fmt.dec1 },
    ],
  },
  {
    id: 'w2',
    title: 'W2: 200 acquire → release loops in flight on distinct keys',
    note:
      'Each library in a child process of its own; Node CPU is that process\'s user + system time (all its threads, the native core\'s included) per op. ' +
      'Redis CPU: redis-server\'s user + system time per op (INFO cpu). Ctx switches: the child\'s voluntary + involuntary context switches per op. The libraries take turns in slices of 250 ms, as in W1. ' +
      REFERENCE_NOTE,
    metrics: [
      { key: 'opsPerSec', label: 'ops/s', better: 'higher', fmt: fmt.int },
      { key: 'cpuPerOp', label: 'Node CPU µs/op', better: 'lower', fmt: fmt.dec1 },
      { key: 'redisCpuPerOp', label: 'Redis CPU µs/op', better: 'lower', fmt: fmt.dec1 },
      { key: 'switchesPerOp', label: 'ctx switches/op', better: 'lower', fmt: fmt.dec2 },
      { key: 'cmdsPerOp', label: 'Redis cmds/op', better: 'lower', fmt: fmt.dec1 },
    ],
  },
  {
    id: 'w3',
    title: 'W3: 16 tasks in one process on one key (hold 1 ms)',
    note:
      'Handoff: release resolved → next grant to another task (the polling peers mostly regrant to the releaser, so their handoffs are few). Regranted: share of grants that went to the task that had just released. ' +
      'No grant: tasks with no grant in the measured window (worst round). Requests: the commands the library sent itself (the rest ran inside its Lua scripts).',
    metrics: [
      { key: 'grantsPerSec', label: 'grants/s', better: 'higher', fmt: fmt.int },
      { key: 'handoffP50', label: 'handoff p50 ms', better: 'lower', fmt: fmt.ms },
      { key: 'handoffP99', label: 'handoff p99 ms', better: 'lower', fmt: fmt.ms },
      { key: 'regrantShare', label: 'regranted', better: 'lower', fmt: fmt.pct, ratio: false },
      { key: 'tasksWithoutGrant', label: 'no grant', better: 'lower', fmt: fmt.count, agg: 'max', ratio: false },
      { key: 'longestWait', label: 'longest wait ms', better: 'lower', fmt: fmt.ms },
      { key: 'cmdsPerGrant', label: 'Redis cmds/grant', better: 'lower', fmt: fmt.dec1 },
      { key: 'reqsPerGrant', label: 'requests/grant', better: 'lower', fmt: fmt.dec1 },
    ],
  },
  {
    id: 'w4',
    title: 'W4: 4 processes × 4 tasks on one key, non-atomic counter in the critical section',
    note:
      'Critical section: GET counter, hold 1 ms, SET counter + 1 (a plain ioredis client; its GET and SET are not counted below). ' +
      'Same process next: share of grants that went to a task of the process that had just released (25 % if processes took turns at random). ' +
      'Share min / max: the fewest / most grants of one task relative to the mean per task. Counter: whether it ended equal to the number of grants in every round.',
    metrics: [
      { key: 'grantsPerSec', label: 'grants/s', better: 'higher', fmt: fmt.int },
      { key: 'handoffP50', label: 'handoff p50 ms', better: 'lower', fmt: fmt.ms },
      { key: 'handoffP99', label: 'handoff p99 ms', better: 'lower', fmt: fmt.ms },
      { key: 'regrantShare', label: 'regranted', better: 'lower', fmt: fmt.pct, ratio: false },
      { key: 'sameGroupShare', label: 'same process next', better: 'lower', fmt: fmt.pct, ratio: false },
      { key: 'tasksWithoutGrant', label: 'no grant', better: 'lower', fmt: fmt.count, agg: 'max', ratio: false },
      { key: 'shareMin', label: 'share min', better: 'higher', fmt: fmt.dec2, ratio: false },
      { key: 'shareMax', label: 'share max', better: 'lower', fmt: fmt.dec2, ratio: false },
      { key: 'longestWait', label: 'longest wait ms', better: 'lower', fmt: fmt.ms },
      { key: 'cmdsPerGrant', label: 'Redis cmds/grant', better: 'lower', fmt: fmt.dec1 },
      { key: 'reqsPerGrant', label: 'requests/grant', better: 'lower', fmt: fmt.dec1 },
      { key: 'counterOk', label: 'counter', fmt: (v) => (v ? 'exact' : '**MISMATCH**'), agg: 'all', ratio: false },
    ],
  },
  {
    id: 'w5',
    title: 'W5: 16 tasks already waiting when the holder leaves',
    note:
      'Handoff: the holder\'s release resolved → the first waiter\'s grant. Commands and requests per grant while 16 wait. ' +
      'For the polling peers, a waiter\'s poll that happens to be sent in the same event-loop turn as the release is granted at once, which is what pulls some of their p50s far below retryDelay / 2.',
    metrics: [
      { key: 'handoffP50', label: 'handoff p50 ms', better: 'lower', fmt: fmt.ms },
      { key: 'handoffP99', label: 'handoff p99 ms', better: 'lower', fmt: fmt.ms },
      { key: 'handoffMax', label: 'handoff max ms', better: 'lower', fmt: fmt.ms },
      { key: 'cmdsPerGrant', label: 'Redis cmds/grant', better: 'lower', fmt: fmt.dec1 },
      { key: 'reqsPerGrant', label: 'requests/grant', better: 'lower', fmt: fmt.dec1 },
    ],
  },
]

/** The rounds' values of one metric combined as the metric says. */
function combine(rounds, metric) {
  const values = rounds.filter((r) => !r.error).map((r) => r[metric.key])
  if (values.length === 0) return null
  if (metric.agg === 'max') return max(values)
  if (metric.agg === 'all') return values.every(Boolean)
  return median(values)
}

class Results {
  constructor(libs) {
    this.libs = libs
    this.data = {} // workload → config label → lib id → [round results]
  }

  add(workload, config, libId, result) {
    const w = (this.data[workload] ??= {})
    const c = (w[config] ??= {})
    ;(c[libId] ??= []).push(result)
  }

  rounds(workload, config, libId) {
    return this.data[workload]?.[config]?.[libId] ?? []
  }

  value(workload, config, libId, key) {
    const metric = WORKLOADS.find((w) => w.id === workload).metrics.find((m) => m.key === key)
    return combine(this.rounds(workload, config, libId), metric)
  }

  configs(workload) {
    return Object.keys(this.data[workload] ?? {})
  }
}

function cell(value, metric, base) {
  if (value === null || value === undefined) return '–'
  let text = metric.fmt(value)
  if (metric.ratio !== false && base !== null && typeof value === 'number') {
    const r = ratio(value, base)
    if (r !== null) text += ` (${r.toFixed(2)}×)`
  }
  return text
}

/**
 * The tables of workload `w`, one per configuration. `baseline`: the id of
 * the library the ratios in parentheses are to; `heading`: the Markdown
 * heading of each table; `titlePrefix`: put before the workload's title;
 * `note`: whether the workload's note follows.
 */
function workloadTables(results, w, { baseline = 'bare', heading = '###', titlePrefix = '', note = true } = {}) {
  const out = []
  for (const config of results.configs(w.id)) {
    out.push(`${heading} ${titlePrefix}${w.title}${config ? `, ${config}` : ''}`, '')
    const header = ['library', ...w.metrics.map((m) => m.label)]
    out.push(`| ${header.join(' | ')} |`, `| ${header.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`)
    for (const lib of results.libs) {
      const rounds = results.rounds(w.id, config, lib.id)
      if (rounds.length === 0) continue
      const cells = w.metrics.map((m) =>
        cell(results.value(w.id, config, lib.id, m.key), m, results.value(w.id, config, baseline, m.key)),
      )
      const failed = rounds.filter((r) => r.error).length
      const name = failed ? `${lib.name} (${failed} of ${rounds.length} rounds failed)` : lib.name
      out.push(`| ${name} | ${cells.join(' | ')} |`)
    }
    for (const lib of results.libs.filter((l) => !l.peer && !l.reference && !l.baselineOf)) {
      const cells = w.metrics.map((m) => {
        if (m.ratio === false || !m.better) return ''
        const best = bestPeer(results, w.id, config, m)
        const mine = results.value(w.id, config, lib.id, m.key)
        const r = best ? ratio(mine, best.value) : null
        return r === null ? '–' : `${r.toFixed(2)}× (${best.lib.name})`
      })
      out.push(`| *${lib.name} ÷ best peer* | ${cells.join(' | ')} |`)
    }
    out.push('')
  }
  if (note) out.push(w.note, '')
  return out
}

function bestPeer(results, workload, config, metric) {
  let best = null
  for (const lib of results.libs.filter((l) => l.peer)) {
    const value = results.value(workload, config, lib.id, metric.key)
    if (value === null) continue
    const better = metric.better === 'higher' ? value > best?.value : value < best?.value
    if (best === null || better) best = { lib, value }
  }
  return best
}

// ---- targets

function targets(results) {
  const v = (w, c, lib, key) => results.value(w, c, lib, key)
  const modes = results.libs.filter((l) => !l.peer && !l.reference && !l.baselineOf)
  const ms = (x) => (x === null ? '–' : `${fmt.ms(x)} ms`)
  const lines = []
  const check = (ok, text) => lines.push(`- **${ok ? 'met' : 'NOT MET'}**: ${text}`)
  const contended = ['w3', 'w4', 'w5']

  // W5 handoff at retryDelay 50.
  for (const m of modes) {
    const p50 = v('w5', 'retryDelay 50 ms', m.id, 'handoffP50')
    const p99 = v('w5', 'retryDelay 50 ms', m.id, 'handoffP99')
    check(p50 !== null && p50 <= 1 && p99 <= 3, `W5 handoff p50 ≤ 1 ms and p99 ≤ 3 ms at retryDelay 50 (${m.name}): p50 ${ms(p50)}, p99 ${ms(p99)}`)
  }
  // W3 starvation, every round.
  for (const m of modes) {
    const parts = results.configs('w3').map((c) => {
      const worst = v('w3', c, m.id, 'tasksWithoutGrant')
      return { c, worst }
    })
    const ok = parts.every((p) => p.worst === 0)
    check(ok, `W3 no task without grants (${m.name}, worst round): ${parts.map((p) => `${p.c}: ${p.worst ?? '–'} of 16`).join('; ')}`)
  }
  // Fair W4 shares and longest wait.
  for (const m of modes.filter((l) => l.id.endsWith('fair'))) {
    for (const c of results.configs('w4')) {
      const lo = v('w4', c, m.id, 'shareMin')
      const hi = v('w4', c, m.id, 'shareMax')
      const wait = v('w4', c, m.id, 'longestWait')
      const ok = lo !== null && lo >= 0.5 && hi <= 1.5 && wait <= 100
      check(ok, `W4 fair mode, ${c}: every task's share within ±50 % of the mean (min ${fmt.dec2(lo ?? NaN)}×, max ${fmt.dec2(hi ?? NaN)}× the mean) and longest wait ≤ 100 ms (${ms(wait)})`)
    }
  }
  // Commands per grant under contention.
  for (const m of modes) {
    const parts = []
    for (const w of contended) {
      for (const c of results.configs(w)) {
        parts.push({ label: `${w.toUpperCase()} ${c.replace('retryDelay ', 'rd ')}`, cmds: v(w, c, m.id, 'cmdsPerGrant'), reqs: v(w, c, m.id, 'reqsPerGrant') })
      }
    }
    const worst = max(parts.map((p) => p.cmds ?? Infinity))
    check(worst <= 3, `Redis commands per grant under contention ≤ 3 (${m.name}): ${parts.map((p) => `${p.label}: ${p.cmds === null ? '–' : fmt.dec1(p.cmds)}`).join(', ')} (requests sent per grant: ${parts.map((p) => (p.reqs === null ? '–' : fmt.dec1(p.reqs))).join(', ')})`)
  }
  // W1, W2 throughput and W2 CPU against the bare loop.
  for (const w of ['w1', 'w2']) {
    const c = results.configs(w)[0]
    for (const m of modes) {
      const mine = v(w, c, m.id, 'opsPerSec')
      const base = v(w, c, 'bare', 'opsPerSec')
      const r = ratio(mine, base)
      check(r !== null && r >= 1, `${w.toUpperCase()} ops/s ≥ 1.0× the bare ioredis loop (${m.name}): ${fmt.int(mine ?? 0)} vs ${fmt.int(base ?? 0)} ops/s = ${r === null ? '–' : r.toFixed(2)}×`)
    }
  }
  const c2 = results.configs('w2')[0]
  for (const m of modes) {
    const mine = v('w2', c2, m.id, 'cpuPerOp')
    const base = v('w2', c2, 'bare', 'cpuPerOp')
    const r = ratio(mine, base)
    check(r !== null && r <= 0.5, `W2 Node CPU per op ≤ 0.5× the bare loop's (${m.name}): ${fmt.dec1(mine ?? NaN)} vs ${fmt.dec1(base ?? NaN)} µs/op = ${r === null ? '–' : r.toFixed(2)}×`)
  }
  return lines
}

// ---- correctness and command breakdown

function correctness(results) {
  const lines = []
  for (const lib of results.libs) {
    for (const c of results.configs('w4')) {
      for (const [i, r] of results.rounds('w4', c, lib.id).entries()) {
        if (!r.error && !r.counterOk) {
          lines.push(`- **COUNTER MISMATCH** W4 ${lib.name}, ${c}, round ${i + 1}: counter ${r.counter}, grants ${r.totalGrants}`)
        }
      }
    }
    for (const w of ['w3', 'w4', 'w5']) {
      for (const c of results.configs(w)) {
        const overlaps = results.rounds(w, c, lib.id).reduce((n, r) => n + (r.overlaps || 0), 0)
        if (overlaps > 0) lines.push(`- **OVERLAP** ${w.toUpperCase()} ${lib.name}, ${c}: ${overlaps} grants while another task of the process held the lock`)
      }
    }
  }
  const errors = []
  for (const [w, configs] of Object.entries(results.data)) {
    for (const [c, libs] of Object.entries(configs)) {
      for (const [id, rounds] of Object.entries(libs)) {
        for (const [i, r] of rounds.entries()) if (r.error) errors.push(`- ${w.toUpperCase()} ${c} ${id} round ${i + 1}: ${r.error}`)
      }
    }
  }
  const out = []
  if (lines.length === 0) {
    out.push('Every W4 counter ended equal to the number of grants, in every round and for every library, and no grant in W3, W4 or W5 overlapped another of the same process.')
  } else {
    out.push(...lines)
  }
  if (errors.length) out.push('', 'Failed measurements:', '', ...errors)
  return out
}

function breakdown(results) {
  const out = []
  for (const [w, c] of [['w3', 'retryDelay 50 ms'], ['w5', 'retryDelay 50 ms'], ['w5', 'retryDelay 5 ms']]) {
    out.push(`${w.toUpperCase()}, ${c}:`, '', '| library | commands per grant (median over rounds) |', '| --- | --- |')
    for (const lib of results.libs) {
      const rounds = results.rounds(w, c, lib.id).filter((r) => !r.error && r.calls)
      if (rounds.length === 0) continue
      const names = new Set(rounds.flatMap((r) => Object.keys(r.calls)))
      const per = []
      for (const name of names) {
        if (/^(info|config)/.test(name)) continue
        const m = median(rounds.map((r) => (r.calls[name] || 0) / r.grantsCounted))
        if (m >= 0.005) per.push([name, m])
      }
      per.sort((a, b) => b[1] - a[1])
      out.push(`| ${lib.name} | ${per.map(([n, m]) => `${n} ${m.toFixed(2)}`).join(', ')} |`)
    }
    out.push('')
  }
  return out
}

/**
 * How dist-lock's uncontended gap to the bare loop splits (W1 cycle p50, W2
 * Node CPU per op): the part that the reference row (its scripts over
 * ioredis) shares, which is the cost of the Redis work, and the rest, which
 * is the native core and the crossing between threads. Empty without the
 * reference row's results.
 */
function uncontendedGap(results) {
  const v = (w, lib, key) => results.value(w, '', lib, key)
  const lines = []
  const split = (w, key, what, unit, scale) => {
    const bare = v(w, 'bare', key)
    const ref = v(w, 'dist-lock-scripts', key)
    const mine = v(w, 'dist-lock', key)
    if ([bare, ref, mine].some((x) => x === null)) return
    const f = (x) => `${(x * scale).toFixed(1)} ${unit}`
    lines.push(
      `- ${what}: bare loop ${f(bare)}, ioredis + dist-lock scripts ${f(ref)}, dist-lock ${f(mine)}: ` +
        `of dist-lock's ${f(mine - bare)} more, ${f(ref - bare)} is the Redis work of its scripts and ${f(mine - ref)} the native core and the crossing.`,
    )
  }
  split('w1', 'p50', 'W1 cycle p50', 'µs', 1000)
  split('w2', 'cpuPerOp', 'W2 Node CPU per op', 'µs', 1)
  if (lines.length === 0) return []
  return ['## Where the uncontended gap goes', '', ...lines, '']
}

function render({ meta, results }) {
  const out = [
    '# dist-lock benchmark results',
    '',
    `Written by \`npm run bench${meta.only ? ' -- --only single' : ''}${meta.quick ? `${meta.only ? '' : ' --'} --quick` : ''}\` (\`benchmark/run.js\`).`,
    '',
    `- Machine: ${meta.cpu}, ${meta.cores} cores, ${meta.os}; load average (1 / 5 / 15 min) ${meta.load}`,
    `- Node.js ${meta.node}, Redis ${meta.redis} (one redis-server started by the run, on a free port)`,
    `- Date: ${meta.date}; mode: **${meta.quick ? 'quick' : 'full'}**; ${meta.rounds} round(s), libraries interleaved in a rotated order in each round; run time ${meta.elapsed}`,
    `- Libraries: ${meta.versions}`,
    `- dist-lock measured: ${meta.build}${meta.buildAfter === meta.build ? '' : ` (**changed during the run**, now: ${meta.buildAfter})`}`,
    `- Settings: ttl ${meta.params.ttl} ms; W1 ${meta.params.w1} ms, W2 ${meta.params.w2} ms with 200 in flight, W3 ${meta.params.w3} ms, W4 ${meta.params.w4} ms per round; W5 ${meta.params.w5} handoffs per round; W3–W5 at retryDelay 50 and 5 ms; W1 and W2 at retryDelay 50 ms (no contention). Retries unlimited, no jitter.`,
    '- Scale-out (Redlock over 5 masters, Redis Cluster of 3 masters): the last section, "Scale-out", which has its own run details.',
    '',
    'Each cell is the median over the rounds; in parentheses, its ratio to the bare ioredis loop (SET NX PX polled every retryDelay, compare-and-delete script). ' +
      'The *÷ best peer* rows divide dist-lock\'s value by the best peer\'s (ioredis loop, redlock, redis-semaphore) for that column. ' +
      'Redis commands are counted with CONFIG RESETSTAT / INFO commandstats and include the commands run inside Lua scripts; "requests" are only the commands a library sent itself (round trips).',
    '',
    '## Targets',
    '',
    ...targets(results),
    '',
    ...uncontendedGap(results),
    '## Correctness',
    '',
    ...correctness(results),
    '',
    '## Workloads',
    '',
  ]
  for (const w of WORKLOADS) out.push(...workloadTables(results, w))
  out.push('## Where the Redis commands of a grant go', '', ...breakdown(results))
  return out.join('\n')
}

// ---- scale-out (benchmark/scale-out.js)

const SCALE_OUT_HEADING = '## Scale-out: Redlock over 5 masters, Redis Cluster of 3 masters'

/** What the scale-out summary shows of each dist-lock mode: [workload, metric key, column label]. */
const SUMMARY_COLUMNS = [
  ['w1', 'opsPerSec', 'W1 ops/s'],
  ['w2', 'opsPerSec', 'W2 ops/s'],
  ['w2', 'cpuPerOp', 'W2 Node CPU µs/op'],
  ['w3', 'grantsPerSec', 'W3 grants/s'],
  ['w3', 'longestWait', 'W3 longest wait ms'],
  ['w3', 'tasksWithoutGrant', 'W3 no grant'],
]

function scaleOutSummary(groups) {
  const columns = []
  for (const [w, key, label] of SUMMARY_COLUMNS) {
    // One column per configuration of the workload (W3: each retryDelay).
    const configs = [...new Set(groups.flatMap((g) => g.results.configs(w)))]
    for (const config of configs) {
      const metric = WORKLOADS.find((x) => x.id === w).metrics.find((m) => m.key === key)
      columns.push({ w, config, metric, label: config ? `${label}, ${config.replace('retryDelay ', 'rd ')}` : label })
    }
  }
  const out = [
    `| topology | library | ${columns.map((c) => c.label).join(' | ')} |`,
    `| --- | --- | ${columns.map(() => '---:').join(' | ')} |`,
  ]
  for (const g of groups) {
    for (const lib of g.results.libs) {
      if (lib.peer && lib.id !== g.baseline) continue
      const cells = columns.map((c) =>
        cell(g.results.value(c.w, c.config, lib.id, c.metric.key), c.metric, g.results.value(c.w, c.config, g.baseline, c.metric.key)),
      )
      const name = lib.id === g.baseline ? `${lib.name} (baseline)` : lib.name
      out.push(`| ${g.short} | ${name} | ${cells.join(' | ')} |`)
    }
  }
  return out
}

function scaleOutCorrectness(groups) {
  const lines = []
  const errors = []
  for (const g of groups) {
    for (const lib of g.results.libs) {
      for (const c of g.results.configs('w3')) {
        const overlaps = g.results.rounds('w3', c, lib.id).reduce((n, r) => n + (r.overlaps || 0), 0)
        if (overlaps > 0) lines.push(`- **OVERLAP** ${g.short}, W3 ${lib.name}, ${c}: ${overlaps} grants while another task of the process held the lock`)
      }
    }
    for (const [w, configs] of Object.entries(g.results.data)) {
      for (const [c, libs] of Object.entries(configs)) {
        for (const [id, rounds] of Object.entries(libs)) {
          const name = g.results.libs.find((l) => l.id === id)?.name ?? id
          for (const [i, r] of rounds.entries()) {
            if (r.error) errors.push(`- ${g.short}, ${w.toUpperCase()}${c ? ` ${c}` : ''}, ${name}, round ${i + 1}: ${r.error.split('\n')[0]}`)
          }
        }
      }
    }
  }
  const out = lines.length
    ? lines
    : ['No grant in W3 overlapped another task\'s of the same process, in any round, for any library, in either topology.']
  if (errors.length) out.push('', 'Failed measurements:', '', ...errors)
  return out
}

/**
 * The "Scale-out" section. `groups`: one per topology, `{ id, title, short,
 * baseline (library id), setup (text), results (Results) }`.
 */
function renderScaleOut({ meta, groups }) {
  const out = [
    SCALE_OUT_HEADING,
    '',
    `Written by \`npm run bench${meta.only ? ' -- --only topologies' : ''}${meta.quick ? `${meta.only ? '' : ' --'} --quick` : ''}\` (\`benchmark/scale-out.js\`).`,
    '',
    'W1, W2 and W3 as above (the same workload code, settings and slicing), against two topologies that the run starts for this part on free loopback ports, ' +
      'each redis-server without persistence. **Redlock, 5 independent masters**: dist-lock takes a quorum of the masters (its array form; no fencing token in this mode), ' +
      'node-redlock 4 (the baseline) and 5 beta get 5 ioredis clients, one per master; all with the same ttl and retryDelay, unlimited retries, no jitter. ' +
      '**Redis Cluster, 3 masters** (no replicas): dist-lock gets the nodes as `{ cluster: [...] }`; the baseline is the bare loop over an ioredis Cluster client ' +
      '(SET NX PX polled every retryDelay, compare-and-delete release by EVALSHA); node-redlock runs with that one Cluster client as its single "instance". ' +
      'W1: one task, acquire → release back to back on one key (ops/s, cycle latency). W2: 200 loops in flight on distinct keys (spread over the cluster\'s slots), ' +
      'each library in a child process of its own (ops/s, the child\'s user + system CPU per op). W3: 16 tasks of one process on one key holding it 1 ms ' +
      '(grants/s, handoff latency, share of grants back to the releaser, tasks without a grant in the worst round, longest wait). ' +
      'In parentheses: the ratio to the topology\'s baseline. Redis commands and Redis CPU are summed over every node of the topology (CONFIG RESETSTAT, INFO commandstats and INFO cpu on each). ' +
      'The libraries take turns in a rotated order, in slices within W1 and W2 and from round to round; each cell is the median over the rounds.',
    '',
    `- Machine: ${meta.cpu}, ${meta.cores} cores, ${meta.os}; load average (1 / 5 / 15 min) ${meta.load}`,
    `- Date: ${meta.date}; mode: **${meta.quick ? 'quick' : 'full'}**; ${meta.rounds} round(s); run time of this part ${meta.elapsed} (starting the topologies: ${meta.startup})`,
    `- Node.js ${meta.node}, Redis ${meta.redis}; libraries: ${meta.versions}`,
    `- dist-lock measured: ${meta.build}${meta.buildAfter === meta.build ? '' : ` (**changed during the run**, now: ${meta.buildAfter})`}`,
    ...groups.map((g) => `- ${g.title}: ${g.setup}`),
    `- Settings: ttl ${meta.params.ttl} ms; W1 ${meta.params.w1} ms, W2 ${meta.params.w2} ms with 200 in flight, W3 ${meta.params.w3} ms per round and library; W3 at retryDelay 50 and 5 ms, W1 and W2 at retryDelay 50 ms.`,
    '',
    '### Summary',
    '',
    ...scaleOutSummary(groups),
    '',
    '### Correctness',
    '',
    ...scaleOutCorrectness(groups),
    '',
  ]
  for (const g of groups) {
    out.push(`### ${g.title}`, '')
    for (const w of WORKLOADS.filter((x) => g.results.configs(x.id).length > 0)) {
      out.push(...workloadTables(g.results, w, { baseline: g.baseline, heading: '####', note: false }))
    }
  }
  return out.join('\n')
}

// The sections written by hand at the end of RESULTS.md (the noise between
// two builds of the same code, measured with `--baseline`): kept, as they
// are, by every run.
const NOTES_HEADING = '## Noise between two builds of the same code'

/**
 * Splits a RESULTS.md text into the single-server part, the scale-out
 * section and the notes at the end (from NOTES_HEADING on), so that a run
 * replaces only its own part.
 */
function splitResults(text) {
  const notesAt = text.indexOf(`\n${NOTES_HEADING}`)
  const notes = notesAt < 0 ? null : text.slice(notesAt + 1).trimEnd()
  const rest = notesAt < 0 ? text : text.slice(0, notesAt)
  const at = rest.indexOf(`\n${SCALE_OUT_HEADING.split(':')[0]}`)
  if (at < 0) return { single: rest.trimEnd(), scaleOut: null, notes }
  return { single: rest.slice(0, at).trimEnd(), scaleOut: rest.slice(at + 1).trimEnd(), notes }
}

module.exports = { Results, render, renderScaleOut, splitResults, workloadTables, correctness, fmt, WORKLOADS }
