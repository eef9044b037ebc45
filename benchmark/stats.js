'use strict'

// Small statistics helpers: percentiles of samples, medians over rounds,
// ratios, the rotation of the libraries' order, and the analysis of a contention run's grant events (W3, W4).

/** The p-th percentile (0..100) of `values`, linearly interpolated; null if empty. */
function percentile(values, p) {
  if (values.length === 0) return null
  const sorted = Float64Array.from(values).sort()
  const rank = (p / 100) * (sorted.length - 1)
  const lo = Math.floor(rank)
  const hi = Math.ceil(rank)
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo)
}

/** The median of the non-null numbers in `values`; null if there are none. */
function median(values) {
  const xs = values.filter((v) => typeof v === 'number' && Number.isFinite(v))
  return percentile(xs, 50)
}

function max(values) {
  return values.length === 0 ? null : values.reduce((a, b) => (b > a ? b : a), -Infinity)
}

/** `list` rotated left by `n`: how the libraries' order changes from round to round (or slice to slice). */
function rotate(list, n) {
  const k = n % list.length
  return [...list.slice(k), ...list.slice(0, k)]
}

/** a / b, or null when either is missing or b is 0. */
function ratio(a, b) {
  if (a == null || b == null || b === 0) return null
  return a / b
}

/**
 * Analyses the grants of a contention run (W3, W4). `events` holds one
 * `{ task, callAt, grantAt, releaseAt }` per grant (times from `now()`),
 * from every task, in any order; `tasks` lists every task id, so that a
 * task with no grant counts. Only grants up to `endAt` count as measured
 * (the grants of the drain after it only close the waits still open).
 *
 * - handoff: from the release (resolved) of a grant to the next grant when
 *   that one goes to another task; clamped at 0 (the grant's answer can be
 *   seen before the releaser sees its own release answered);
 * - regrantShare: the fraction of consecutive grants that went to the task
 *   that had just released;
 * - longestWait: the longest time from an acquire call to its grant;
 * - sameGroupShare (with `groupOf`, e.g. a task's process): the fraction of
 *   consecutive grants that stayed in the group of the previous holder.
 */
function analyseGrants(events, { tasks, startAt, endAt, groupOf = null }) {
  const sorted = [...events].sort((a, b) => a.grantAt - b.grantAt)
  const measured = sorted.filter((e) => e.grantAt <= endAt)
  const handoffs = []
  let pairs = 0
  let regrants = 0
  let sameGroup = 0
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]
    const next = sorted[i]
    if (next.grantAt > endAt) break
    pairs++
    if (groupOf && groupOf(next.task) === groupOf(prev.task)) sameGroup++
    if (next.task === prev.task) {
      regrants++
    } else {
      handoffs.push(Math.max(0, next.grantAt - prev.releaseAt))
    }
  }
  const perTask = new Map(tasks.map((t) => [t, 0]))
  for (const e of measured) perTask.set(e.task, (perTask.get(e.task) || 0) + 1)
  const counts = [...perTask.values()]
  const mean = measured.length / tasks.length
  const waits = sorted.filter((e) => e.callAt <= endAt).map((e) => e.grantAt - e.callAt)
  return {
    grants: measured.length,
    grantsPerSec: (measured.length * 1000) / (endAt - startAt),
    handoffP50: percentile(handoffs, 50),
    handoffP99: percentile(handoffs, 99),
    regrantShare: pairs === 0 ? null : regrants / pairs,
    sameGroupShare: pairs === 0 || !groupOf ? null : sameGroup / pairs,
    tasksWithoutGrant: counts.filter((c) => c === 0).length,
    shareMin: mean === 0 ? null : Math.min(...counts) / mean,
    shareMax: mean === 0 ? null : Math.max(...counts) / mean,
    longestWait: max(waits),
  }
}

module.exports = { percentile, median, max, ratio, rotate, analyseGrants }
