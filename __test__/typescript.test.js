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

/** Compiles the project and loads one compiled file from beside the sources. */
function compiled(name) {
  execFileSync(process.execPath, [tsc, '-p', project, '--noEmit', 'false', '--outDir', outDir], {
    encoding: 'utf8',
  })
  // The compiled file requires 'dist-lock', which resolves to this package
  // through its "exports" field (package self-reference) when run from here.
  const local = path.join(__dirname, 'types', `.compiled-${process.pid}-${name}.js`)
  fs.copyFileSync(path.join(outDir, `${name}.js`), local)
  try {
    return require(local)
  } finally {
    fs.rmSync(local, { force: true })
  }
}

test('the compiled default-import form acquires and releases', async () => {
  const { run } = compiled('usage-esm')
  assert.equal(await run(server.url), true)
})

test('`await using` releases the lock at the end of its scope', async () => {
  const { holdInScope } = compiled('dispose')
  const { heldInside, key } = await holdInScope(server.url, 'ts-dispose')
  assert.equal(heldInside, true)
  assert.equal(key, 'lock:ts-dispose')
  assert.equal(server.cli('EXISTS', key), '0')
})

test('`using` from TypeScript runs the function with the lock', async () => {
  const { usingScope } = compiled('dispose')
  const token = await usingScope(server.url, 'ts-using')
  assert.ok(Number.isSafeInteger(token) && token >= 1)
  assert.equal(server.cli('EXISTS', 'lock:ts-using'), '0')
})
