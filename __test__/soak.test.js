'use strict'

// The soak script in its short CI form: `node benchmark/soak.js --seconds 20
// --procs 2` (10 000 locks held at once, then 20 s of acquire/release cycles
// in 2 processes × 64 loops). It checks its own bounds (RSS, fds, handles,
// failed cycles, keys left) and exits with 1 if one is broken; its summary
// lines are printed here.

const { test } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')

const root = path.join(__dirname, '..')
const TIMEOUT_MS = 90_000

test('benchmark/soak.js --seconds 20 --procs 2 holds its bounds', { timeout: TIMEOUT_MS + 10_000 }, async (t) => {
  const child = spawn(process.execPath, [path.join(root, 'benchmark', 'soak.js'), '--seconds', '20', '--procs', '2'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  let timedOut = false
  const { code, signal } = await new Promise((resolve) => {
    const timer = setTimeout(() => {
      timedOut = true
      // SIGTERM first: the script then kills its children and stops its redis-server.
      child.kill('SIGTERM')
      setTimeout(() => child.kill('SIGKILL'), 5_000).unref()
    }, TIMEOUT_MS)
    child.once('exit', (c, s) => {
      clearTimeout(timer)
      resolve({ code: c, signal: s })
    })
  })
  for (const line of stdout.split('\n').filter((l) => l.startsWith('soak: '))) t.diagnostic(line)
  const details = `\nstdout:\n${stdout}\nstderr:\n${stderr.slice(-3000)}`
  assert.equal(timedOut, false, `the soak run did not finish within ${TIMEOUT_MS} ms${details}`)
  assert.equal(signal, null, `the soak run died of ${signal}${details}`)
  assert.equal(code, 0, `the soak run exited with ${code}${details}`)
  assert.match(stdout, /soak: PASS/)
})
