'use strict'

// The report of a partial run of the single-server part: `--only` naming
// workloads (`--only w1,w2,w5`) and/or `--baseline <dir>`. It is printed
// (and written to `--out <file>` if given); RESULTS.md is left as it is,
// since its targets and tables need every workload and no baseline rows.
//
// With a baseline build, its first section divides each dist-lock mode of
// this build by the same mode of the baseline build (adapters.js,
// `baselineAdapters`), for what a change must not make worse: W1 and W2
// throughput, W1 latency, W2 Node CPU per op, W5 handoff latency. Both
// builds ran in the same rounds, in the same rotated order as every other
// row, so each round gives a ratio of its own (the two builds measured in
// the same machine state); the headline is the median of these, since the
// ratio of the two medians can pair values from rounds far apart on a
// noisy machine. Their spread is the noise to read it against.

const { median, ratio } = require('./stats.js')
const { workloadTables, WORKLOADS } = require('./report.js')

/** What is compared: [workload, metric key]. */
const COMPARED = [
  ['w1', 'opsPerSec'],
  ['w1', 'p50'],
  ['w1', 'p99'],
  ['w2', 'opsPerSec'],
  ['w2', 'cpuPerOp'],
  ['w5', 'handoffP50'],
  ['w5', 'handoffP99'],
]

/** Each mode of this build with its baseline row: `[{ mine, base }]`. */
function pairs(results) {
  return results.libs
    .filter((l) => l.baselineOf)
    .map((base) => ({ base, mine: results.libs.find((l) => l.id === base.baselineOf) }))
    .filter((p) => p.mine)
}

/** This build ÷ the baseline build, per round (rounds where both measured). */
function roundRatios(results, w, config, { mine, base }, key) {
  const a = results.rounds(w, config, mine.id)
  const b = results.rounds(w, config, base.id)
  const out = []
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i].error || b[i].error) continue
    const r = ratio(a[i][key], b[i][key])
    if (r !== null) out.push(r)
  }
  return out
}

/** The rows of the comparison table, and every per-round ratio (for the spread). */
function comparisonRows(results) {
  const rows = []
  const all = []
  for (const [w, key] of COMPARED) {
    const metric = WORKLOADS.find((x) => x.id === w).metrics.find((m) => m.key === key)
    for (const config of results.configs(w)) {
      for (const p of pairs(results)) {
        const mine = results.value(w, config, p.mine.id, key)
        const base = results.value(w, config, p.base.id, key)
        if (mine === null && base === null) continue
        const perRound = roundRatios(results, w, config, p, key)
        const r = perRound.length ? median(perRound) : ratio(mine, base)
        all.push(...perRound)
        const what = `${w.toUpperCase()} ${metric.label}${config ? `, ${config}` : ''} (${metric.better} is better)`
        const show = (v) => (v === null ? '–' : metric.fmt(v))
        rows.push(
          `| ${what} | ${p.mine.name} | ${show(mine)} | ${show(base)} | ${r === null ? '–' : `**${r.toFixed(2)}×**`} | ${perRound.map((x) => x.toFixed(2)).join(', ') || '–'} |`,
        )
      }
    }
  }
  return { rows, all }
}

/** The "This build ÷ the baseline build" section; empty without baseline rows. */
function baselineComparison(results) {
  if (pairs(results).length === 0) return []
  const { rows, all } = comparisonRows(results)
  const spread = all.length ? `The per-round ratios above range from ${Math.min(...all).toFixed(2)}× to ${Math.max(...all).toFixed(2)}×.` : ''
  return [
    '## This build ÷ the baseline build',
    '',
    'Each mode of the build measured (this checkout) against the same mode of the baseline build, in the same run and rounds. ' +
      'Per round: that round\'s value of this build divided by the baseline build\'s; this ÷ baseline: the median of these (the two medians divided when no round has both). ' +
      `For ops/s above 1.00× is better, for latencies and CPU below 1.00× is. ${spread}`,
    '',
    '| measure | mode | this build | baseline build | this ÷ baseline | per round |',
    '| --- | --- | ---: | ---: | ---: | --- |',
    ...rows,
    '',
  ]
}

/** Overlapping grants and failed measurements of the workloads that ran. */
function partialCorrectness(results) {
  const out = []
  for (const [w, configs] of Object.entries(results.data)) {
    for (const [c, libs] of Object.entries(configs)) {
      for (const [id, rounds] of Object.entries(libs)) {
        const name = results.libs.find((l) => l.id === id)?.name ?? id
        for (const [i, r] of rounds.entries()) {
          if (r.error) out.push(`- failed: ${w.toUpperCase()}${c ? ` ${c}` : ''} ${name} round ${i + 1}: ${r.error.split('\n')[0]}`)
          if (r.overlaps > 0) out.push(`- **OVERLAP** ${w.toUpperCase()}${c ? ` ${c}` : ''} ${name} round ${i + 1}: ${r.overlaps} grants`)
        }
      }
    }
  }
  return out.length ? out : ['No measurement failed and no grant overlapped another.']
}

/**
 * The partial run's report. `meta`: run.js's run details, with `command`
 * (how it was run, the baseline's directory left out) and `baselineBuild`.
 */
function renderPartial({ meta, results }) {
  const out = [
    '# dist-lock benchmark: partial run',
    '',
    `Written by \`${meta.command}\` (\`benchmark/run.js\`); RESULTS.md was not changed.`,
    '',
    `- Machine: ${meta.cpu}, ${meta.cores} cores, ${meta.os}; load average (1 / 5 / 15 min) ${meta.load}`,
    `- Node.js ${meta.node}, Redis ${meta.redis}; libraries: ${meta.versions}`,
    `- Date: ${meta.date}; mode: **${meta.quick ? 'quick' : 'full'}**; ${meta.rounds} round(s), rows interleaved in a rotated order; run time ${meta.elapsed}; workloads ${meta.workloads.join(', ')}`,
    `- dist-lock measured (this build): ${meta.build}${meta.buildAfter === meta.build ? '' : ` (**changed during the run**, now: ${meta.buildAfter})`}`,
    ...(meta.baselineBuild ? [`- Baseline build: ${meta.baselineBuild}`] : []),
    '',
    ...baselineComparison(results),
    '## Correctness',
    '',
    ...partialCorrectness(results),
    '',
    '## Workloads',
    '',
    'As in RESULTS.md: medians over the rounds, in parentheses the ratio to the bare ioredis loop.',
    '',
  ]
  for (const w of WORKLOADS.filter((x) => results.configs(x.id).length > 0)) out.push(...workloadTables(results, w, { note: false }))
  return `${out.join('\n').trimEnd()}\n`
}

module.exports = { renderPartial, baselineComparison }
