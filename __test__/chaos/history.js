'use strict'

// The history checker of the chaos tests.
//
// Workers (worker.js) print one JSON line per iteration: who acquired which
// resource when, with which fencing token and validity, what the critical
// section did, when the holder let go and how the release ended, or the error
// code of a failed call. `checkHistory` merges the lines of all workers and
// checks, per resource:
//
//  (a) no overlap: the intervals during which two holders both believed they
//      held the lock do not intersect. A holder believes it holds the lock
//      from `acquiredAt` (its acquire resolved) until the first of:
//      `releasedAt` (it called release: it does nothing under the lock after
//      that), `validUntil` (the last validity it knew: past it, it does not
//      rely on the lock) and `lostAt` (the lock told it it was lost);
//  (b) fencing tokens strictly increase in the order of acquisition;
//  (c) no lost update: the per-resource counter in Redis (read-modify-write
//      in the critical sections) equals the number of completed sections.
//      A section whose SET outcome is unknown (its connection dropped or
//      timed out) may or may not have counted: the counter must lie in
//      [completed, completed + unknown].
//
// With `expectLoss` (a scenario that legitimately loses locks, such as a
// Redis restart without persistence), violations are reported in the summary
// but do not make it fail.
//
// All times are on the common clock performance.timeOrigin + performance.now()
// of each worker, corrected for wall-clock steps between the workers' starts
// (see `onOneClock`).

const KNOWN_CODES = new Set([
  'EINVALIDARG',
  'ECONNECTION',
  'EREDIS',
  'ELOCKLOST',
  'ECLOSED',
  'ENOTREPLICATED',
  'ENOTACQUIRED',
  'ABORT_ERR',
])

/** Parses the stdout of the workers: JSON lines; anything else is kept apart. */
function parseHistory(...texts) {
  const records = []
  const garbage = []
  for (const text of texts) {
    for (const line of String(text).split('\n')) {
      if (line.trim() === '') continue
      try {
        records.push(JSON.parse(line))
      } catch {
        garbage.push(line)
      }
    }
  }
  return { records, garbage }
}

function increment(map, key, by = 1) {
  map[key] = (map[key] ?? 0) + by
}

/** The interval during which the holder of `r` believed it held the lock. */
function beliefInterval(r) {
  const end = Math.min(
    r.releasedAt ?? Infinity,
    r.validUntil ?? r.validUntilAtGrant ?? Infinity,
    r.lostAt ?? Infinity,
  )
  return { start: r.acquiredAt, end }
}

const TIME_FIELDS = [
  'acquireStart',
  'acquireEnd',
  'acquiredAt',
  'validUntilAtGrant',
  'readAt',
  'writeAt',
  'writtenAt',
  'validUntil',
  'releasedAt',
  'releaseEnd',
  'lostAt',
]

/**
 * The op records with their times on one clock. performance.timeOrigin is
 * the wall-clock time at which a process started: if the wall clock was
 * stepped (NTP, a VM's clock sync) between the starts of two workers, their
 * common-clock times are off by that step. Each worker reports `clockOffset`
 * (its common clock minus the host's monotonic clock, constant within a
 * process); times are shifted so that every worker has the first one's
 * offset. Without a step the shift is ~0 (microseconds).
 */
function onOneClock(records) {
  const offsets = new Map()
  for (const r of records) {
    if (r.type === 'start' && typeof r.clockOffset === 'number') offsets.set(r.worker, r.clockOffset)
  }
  const values = [...offsets.values()]
  const reference = values.length > 0 ? values[0] : 0
  const clockSpreadMs = values.length > 0 ? Math.max(...values) - Math.min(...values) : 0
  const ops = records
    .filter((r) => r.type === 'op')
    .map((r) => {
      const shift = offsets.has(r.worker) ? reference - offsets.get(r.worker) : 0
      if (shift === 0) return r
      const out = { ...r }
      for (const f of TIME_FIELDS) if (typeof out[f] === 'number') out[f] += shift
      return out
    })
  return { ops, clockSpreadMs }
}

function round(ms) {
  return Math.round(ms * 10) / 10
}

/**
 * Checks the merged records.
 *
 * @param {object[]} records the parsed lines of every worker
 * @param {object} options
 * @param {Record<string, number|null>} [options.counters] resource → counter in
 *   Redis at the end (null if it could not be read); omit to skip (c)
 * @param {{ acquireMs?: number, releaseMs?: number }} [options.bounds] time
 *   bounds of one call; a call that took longer counts in `timeouts`
 * @param {boolean} [options.expectLoss] report violations instead of failing
 * @param {number} [options.epsilonMs] overlaps up to this length are ignored
 *   (clock resolution across processes); default 0
 */
function checkHistory(records, options = {}) {
  const { counters, bounds = {}, expectLoss = false, epsilonMs = 0 } = options
  const { ops, clockSpreadMs } = onOneClock(records)
  const errorsByCode = {}
  const errorsByCall = { acquire: {}, release: {} }
  const sections = {}
  const perResource = {}
  const violations = []
  const unclear = []
  let grants = 0
  let notAcquired = 0
  let releasedFalse = 0
  let lost = 0
  let hung = 0
  let overBound = 0
  let expiredOnArrival = 0
  let maxAcquireMs = 0
  let maxFailedCallMs = 0
  let maxReleaseMs = 0

  const res = (name) =>
    (perResource[name] ??= { grants: 0, done: 0, unknown: 0, intervals: [], reads: [], counter: undefined })

  const noteError = (call, e, ms) => {
    increment(errorsByCode, e.code)
    increment(errorsByCall[call], e.code)
    maxFailedCallMs = Math.max(maxFailedCallMs, ms)
    if (!KNOWN_CODES.has(e.code) || !e.isDistLockError || !e.message || e.message === 'undefined') {
      unclear.push(`${call}: ${JSON.stringify(e)}`)
    }
  }

  for (const r of ops) {
    if (r.outcome === 'hung') hung++
    if (typeof r.acquireMs === 'number') {
      maxAcquireMs = Math.max(maxAcquireMs, r.acquireMs)
      if (bounds.acquireMs !== undefined && r.acquireMs > bounds.acquireMs) {
        overBound++
        violations.push(`acquire of "${r.resource}" took ${round(r.acquireMs)} ms > ${bounds.acquireMs} ms (worker ${r.worker})`)
      }
    }
    if (r.error) {
      noteError('acquire', r.error, r.acquireMs)
      continue
    }
    if (r.outcome === 'not-acquired') {
      notAcquired++
      continue
    }
    if (r.acquiredAt === undefined) continue
    grants++
    const pr = res(r.resource)
    pr.grants++
    increment(sections, r.section ?? 'none')
    if (r.section === 'done') {
      pr.done++
      pr.reads.push(r.read)
    }
    if (r.section === 'write-unknown') pr.unknown++
    if (r.lostAt !== undefined) lost++
    if (typeof r.releaseMs === 'number') {
      maxReleaseMs = Math.max(maxReleaseMs, r.releaseMs)
      if (bounds.releaseMs !== undefined && r.releaseMs > bounds.releaseMs) {
        overBound++
        violations.push(`release of "${r.resource}" took ${round(r.releaseMs)} ms > ${bounds.releaseMs} ms (worker ${r.worker})`)
      }
    }
    if (r.releaseError) noteError('release', r.releaseError, r.releaseMs)
    if (r.release === 'released-false') releasedFalse++
    const interval = beliefInterval(r)
    if (interval.end <= interval.start) expiredOnArrival++
    pr.intervals.push({ ...interval, r })
  }

  // (a) overlaps and (b) fencing tokens, per resource.
  let overlaps = 0
  let maxOverlapMs = 0
  let tokenRegressions = 0
  const overlapSamples = []
  for (const [name, pr] of Object.entries(perResource)) {
    const byStart = pr.intervals.slice().sort((a, b) => a.start - b.start)
    let widest = null // the earlier interval reaching furthest
    for (const iv of byStart) {
      if (widest !== null && iv.end > iv.start && iv.start < widest.end - epsilonMs) {
        overlaps++
        const ms = Math.min(widest.end, iv.end) - iv.start
        maxOverlapMs = Math.max(maxOverlapMs, ms)
        if (overlapSamples.length < 5) {
          overlapSamples.push(
            `"${name}": worker ${iv.r.worker}/${iv.r.task} (token ${iv.r.token}) acquired ${round(ms)} ms before ` +
              `worker ${widest.r.worker}/${widest.r.task} (token ${widest.r.token}) let go`,
          )
        }
      }
      if (iv.end > iv.start && (widest === null || iv.end > widest.end)) widest = iv
    }
    let previous = null
    for (const iv of byStart) {
      if (previous !== null && !(iv.r.token > previous.r.token)) {
        tokenRegressions++
        if (overlapSamples.length < 8) {
          overlapSamples.push(
            `"${name}": token ${iv.r.token} granted after token ${previous.r.token} (worker ${iv.r.worker}/${iv.r.task})`,
          )
        }
      }
      previous = iv
    }
    pr.firstToken = byStart.length ? byStart[0].r.token : null
    pr.lastToken = byStart.length ? byStart[byStart.length - 1].r.token : null
  }

  // (c) the counters.
  let lostUpdates = 0
  let extraIncrements = 0
  let duplicateReads = 0
  for (const [name, pr] of Object.entries(perResource)) {
    const reads = new Set()
    for (const v of pr.reads) {
      if (reads.has(v)) duplicateReads++
      reads.add(v)
    }
    if (counters === undefined) continue
    const value = counters[name]
    pr.counter = value ?? null
    if (value === null || value === undefined) {
      if (pr.done > 0) violations.push(`counter of "${name}" could not be read`)
      continue
    }
    if (value < pr.done) lostUpdates += pr.done - value
    if (value > pr.done + pr.unknown) extraIncrements += value - pr.done - pr.unknown
  }
  lostUpdates = Math.max(lostUpdates, duplicateReads)

  if (overlaps > 0) violations.push(`${overlaps} overlapping grants: ${overlapSamples.join('; ')}`)
  if (tokenRegressions > 0) violations.push(`${tokenRegressions} fencing tokens not above the previous grant's`)
  if (lostUpdates > 0) violations.push(`${lostUpdates} lost updates`)
  if (extraIncrements > 0) violations.push(`${extraIncrements} increments the holders did not make`)
  if (hung > 0) violations.push(`${hung} calls did not settle (hung)`)
  if (unclear.length > 0) violations.push(`${unclear.length} unclear errors: ${unclear.slice(0, 3).join('; ')}`)

  const safetyBroken = overlaps > 0 || tokenRegressions > 0 || lostUpdates > 0 || extraIncrements > 0
  const livenessBroken = hung > 0 || overBound > 0 || unclear.length > 0
  const summary = {
    ok: !livenessBroken && (expectLoss || !safetyBroken),
    expectLoss,
    grants,
    overlaps,
    maxOverlapMs: round(maxOverlapMs),
    tokenRegressions,
    lostUpdates,
    extraIncrements,
    errorsByCode,
    errorsByCall,
    timeouts: hung + overBound,
    hung,
    unclearErrors: unclear.length,
    notAcquired,
    releasedFalse,
    lost,
    expiredOnArrival,
    clockSpreadMs: Math.round(clockSpreadMs * 1000) / 1000, // between the workers' wall clocks, corrected
    sections,
    maxAcquireMs: round(maxAcquireMs),
    maxFailedCallMs: round(maxFailedCallMs),
    maxReleaseMs: round(maxReleaseMs),
    perResource: Object.fromEntries(
      Object.entries(perResource).map(([name, pr]) => [
        name,
        {
          grants: pr.grants,
          done: pr.done,
          unknown: pr.unknown,
          counter: pr.counter,
          firstToken: pr.firstToken,
          lastToken: pr.lastToken,
        },
      ]),
    ),
    violations,
  }
  summary.line = formatSummary(summary)
  return summary
}

/** One printable line. */
function formatSummary(s) {
  const codes = Object.entries(s.errorsByCode)
    .map(([code, n]) => `${code}:${n}`)
    .join(',')
  const counters = Object.entries(s.perResource)
    .map(([name, pr]) => `${name}=${pr.counter ?? '?'}/${pr.done}${pr.unknown ? `+${pr.unknown}?` : ''}`)
    .join(' ')
  return (
    `${s.ok ? 'OK' : 'FAIL'}${s.expectLoss ? ' (loss expected)' : ''}: grants=${s.grants} overlaps=${s.overlaps}` +
    ` tokenRegressions=${s.tokenRegressions} lostUpdates=${s.lostUpdates} timeouts=${s.timeouts}` +
    ` errors={${codes}} notAcquired=${s.notAcquired} releasedFalse=${s.releasedFalse} lost=${s.lost}` +
    ` counters(redis/done)=[${counters}] maxAcquireMs=${s.maxAcquireMs} maxFailedCallMs=${s.maxFailedCallMs}` +
    ` maxReleaseMs=${s.maxReleaseMs}`
  )
}

module.exports = { parseHistory, checkHistory, formatSummary, beliefInterval, KNOWN_CODES }
