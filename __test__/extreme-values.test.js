'use strict'

// Extreme values of every numeric option, per manager and per call, on a
// free key and on a held one, and of `lock.extend(seconds)`: each is either
// refused with EINVALIDARG naming the option, or works (a value too large
// for the clock means "practically forever"). Never EINTERNAL, and the core
// prints nothing: the sweep runs in a child process whose stderr must stay
// empty (a panic in the core would print there).

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const path = require('node:path')
const { startRedis } = require('./helpers/redis-server.js')
const { spawnNode } = require('./helpers/util.js')

const FIXTURE = path.join(__dirname, 'fixtures', 'extreme-values.js')
const children = new Set()
let redis
let records

before(async () => {
  redis = await startRedis()
  const run = await spawnNode([FIXTURE, redis.url], { children, timeoutMs: 120_000, what: 'extreme-values sweep' }).exited
  assert.equal(run.stderr, '', 'nothing on stderr')
  assert.equal(run.code, 0, `the sweep exited with ${run.code}: ${run.stdout.slice(-2000)}`)
  records = run.stdout.trim().split('\n').map((line) => JSON.parse(line))
  assert.deepEqual(records.at(-1), { done: true }, 'the sweep ran to its end')
  records.pop()
})

after(async () => {
  for (const child of children) child.kill('SIGKILL')
  await redis?.stop()
})

/** Every outcome of the sweep, one per (case, phase). */
function outcomes() {
  return records.flatMap((r) =>
    ['created', 'free', 'held'].filter((phase) => r[phase]).map((phase) => ({ ...r, phase, result: r[phase] })),
  )
}

const describeCase = (o) => `${o.where} ${o.label}=${o.value} (${o.phase}): ${JSON.stringify(o.result)}`

test('the sweep covers every numeric option, per manager and per call', () => {
  const seen = (where) => new Set(records.filter((r) => r.where === where).map((r) => r.option))
  for (const option of ['ttl', 'retryDelay', 'maxRetries', 'timeout', 'driftFactor', 'waitReplicas.count', 'waitReplicas.timeoutMs']) {
    assert.ok(seen('call').has(option), `per call: ${option}`)
    assert.ok(seen('manager').has(option), `per manager: ${option}`)
  }
  assert.ok(seen('manager').has('commandTimeout'))
  assert.ok(seen('manager').has('connectTimeout'))
  assert.ok(seen('extend').has('seconds'))
  assert.ok(records.length > 400, `${records.length} cases`)
})

test('no extreme value ends in EINTERNAL, and every error is a documented outcome', () => {
  for (const o of outcomes()) {
    const { result } = o
    if (result.outcome !== 'error') continue
    assert.notEqual(result.code, 'EINTERNAL', describeCase(o))
    switch (result.code) {
      case 'EINVALIDARG':
        assert.ok(result.message.includes(`"${o.option}"`), `the message names the option: ${describeCase(o)}`)
        break
      case 'ABORT_ERR':
        // The bound of the wait on a held key (its AbortSignal).
        assert.equal(o.phase, 'held', describeCase(o))
        break
      case 'ENOTREPLICATED':
        // No replica acknowledges on a server without replicas.
        assert.ok(o.option.startsWith('waitReplicas'), describeCase(o))
        break
      case 'ECONNECTION':
        // A command timeout of a millisecond or so may run out.
        assert.ok(['commandTimeout', 'connectTimeout'].includes(o.option) && Number(o.value) <= 10, describeCase(o))
        break
      default:
        assert.fail(`unexpected code: ${describeCase(o)}`)
    }
  }
})

test('a value accepted once is accepted in both places and gives a lock on a free key', () => {
  for (const o of outcomes().filter((x) => x.phase === 'free' && x.where !== 'extend')) {
    if (o.result.outcome === 'error') continue
    assert.equal(o.result.outcome, 'lock', describeCase(o))
  }
  // The values of the report: retryDelay 1e13 with maxRetries 2**31, and the largest ones.
  const works = (label, value) =>
    ['call', 'manager'].forEach((where) => {
      const r = records.find((x) => x.where === where && x.label === label && x.value === String(value))
      assert.equal(r.free.outcome, 'lock', `${where} ${label}=${value}: ${JSON.stringify(r.free)}`)
      // On a held key: it waits (until the test's AbortSignal), or gives up.
      const waited = r.held.outcome === 'false' || r.held.code === 'ABORT_ERR'
      assert.ok(waited, `${where} ${label}=${value} on a held key: ${JSON.stringify(r.held)}`)
    })
  works('retryDelay+maxRetries 2**31', 1e13)
  works('maxRetries+retryDelay 1e13', 2 ** 31)
  works('retryDelay+maxRetries 2**53-1', 2 ** 53 - 1)
  works('timeout+retryDelay max', 2 ** 53 - 1)
  works('ttl', 2 ** 53 - 1)
  works('ttl+autoExtend', 2 ** 53 - 1)
  works('timeout', 2 ** 53 - 1)
})

test('extend(seconds) resolves true or refuses the argument', () => {
  for (const o of outcomes().filter((x) => x.where === 'extend')) {
    if (o.result.outcome === 'error') continue
    assert.deepEqual(o.result, { outcome: 'value', value: 'true' }, describeCase(o))
  }
  const accepted = records.filter((r) => r.where === 'extend' && r.free.outcome === 'value').map((r) => r.value)
  assert.ok(accepted.includes(String(2 ** 31)) && accepted.includes('1'), `accepted: ${accepted}`)
})
