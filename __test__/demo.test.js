'use strict'

// `npm run demo` (demo/run.js), as the README describes it: against the
// Redis at REDIS_URL (here a test redis-server, never port 6379), it runs its
// workers in the default mode and then in fair mode, prints both summaries
// side by side, shows mutual exclusion in both, exits 0 and leaves no key
// behind but the fencing counter.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const path = require('node:path')
const { startRedis } = require('./helpers/redis-server.js')

const root = path.join(__dirname, '..')
let server

before(async () => {
  server = await startRedis()
})
after(async () => {
  if (server) await server.stop()
})

test('npm run demo: both modes side by side, one holder at a time, exit 0, nothing left locked', async () => {
  const env = { ...process.env, REDIS_URL: server.url }
  delete env.NODE_TEST_CONTEXT
  const r = await new Promise((resolve) => {
    execFile(process.execPath, [path.join(root, 'demo', 'run.js')], { cwd: root, env, timeout: 120_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) =>
      resolve({ code: err ? err.code : 0, signal: err ? err.signal : null, stdout, stderr }),
    )
  })
  const what = `code ${r.code}, signal ${r.signal}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`
  assert.equal(r.code, 0, what)
  assert.equal(r.stderr, '', what)
  assert.match(r.stdout, new RegExp(`REDIS_URL \\(redis://127\\.0\\.0\\.1:${server.port}/?\\)`), what)
  assert.match(r.stdout, /^\s+default\s+fair: true$/m, what)
  const row = (label) => {
    const m = new RegExp(`^  ${label}\\s{2,}(.+?)\\s{3,}(.+)$`, 'm').exec(r.stdout)
    assert.ok(m, `no "${label}" row: ${what}`)
    return [m[1].trim(), m[2].trim()]
  }
  const grants = row('grants').map(Number)
  const perWorker = row('grants per worker').map((cell) => cell.split(' / ').map(Number))
  for (const [mode, i] of [['default', 0], ['fair', 1]]) {
    assert.ok(grants[i] > 0, `${mode}: no grant`)
    assert.equal(perWorker[i].length, 4, `${mode}: 4 workers`)
    assert.equal(perWorker[i].reduce((a, b) => a + b, 0), grants[i], `${mode}: grants per worker add up`)
    assert.match(row('longest wait')[i], /^\d+ ms \(worker \d, \d+ attempts\)$/)
    assert.ok(Number(row('attempts per grant')[i]) >= 1, `${mode}: attempts per grant`)
  }
  assert.deepEqual(row('max concurrent holders'), ['1', '1'])
  assert.deepEqual(row('shared counter'), [`${grants[0]} of ${grants[0]}`, `${grants[1]} of ${grants[1]}`])
  assert.match(r.stdout, /Only one worker held the lock at any time, in both modes\./)
  assert.match(r.stdout, /choose fair: true when/)
  // Nothing left in Redis but the fencing counter of the demo's prefix.
  const keys = server.cli('--scan').split('\n').filter(Boolean)
  assert.deepEqual(keys.filter((k) => !k.endsWith(':fencing')), [], `keys left: ${keys}`)
})
