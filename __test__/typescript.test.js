'use strict'

// The typings: a usage file is compiled with `tsc --strict` (its
// @ts-expect-error lines prove misuse is rejected), then the compiled
// default-import form runs against a real Redis.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { startRedis } = require('./helpers/redis-server.js')

const tsc = require.resolve('typescript/bin/tsc')
const project = path.join(__dirname, 'types', 'tsconfig.json')

let server
let outDir

before(async () => {
  server = await startRedis()
  outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-ts-'))
})

after(async () => {
  await server.stop()
  fs.rmSync(outDir, { recursive: true, force: true })
})

test('the usage files compile with tsc --strict', () => {
  // Throws with tsc's diagnostics on stdout if any type error is found.
  execFileSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8' })
})

test('the compiled default-import form acquires and releases', async () => {
  execFileSync(process.execPath, [tsc, '-p', project, '--noEmit', 'false', '--outDir', outDir], {
    encoding: 'utf8',
  })
  // The compiled file requires 'dist-lock', which resolves to this package
  // through its "exports" field (package self-reference) when run from here.
  const compiled = path.join(outDir, 'usage-esm.js')
  const local = path.join(__dirname, 'types', `.compiled-${process.pid}.js`)
  fs.copyFileSync(compiled, local)
  try {
    const { run } = require(local)
    assert.equal(await run(server.url), true)
  } finally {
    fs.rmSync(local, { force: true })
  }
})
