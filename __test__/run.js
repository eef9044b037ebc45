'use strict'

// `npm test`: runs the suites directly in this folder (not the topology
// suites in topologies/, which `npm run test:topologies` runs) with Node's
// test runner, one file at a time. The file list is built here rather than
// by a shell glob, which the Windows shell would not expand.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const files = fs
  .readdirSync(__dirname)
  .filter((name) => name.endsWith('.test.js'))
  .sort()
  .map((name) => path.join(__dirname, name))

const run = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...process.argv.slice(2), ...files], {
  stdio: 'inherit',
})
if (run.error) throw run.error
process.exitCode = run.status ?? 1
