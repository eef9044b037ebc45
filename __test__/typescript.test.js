'use strict'

// The typings: a usage file is compiled with `tsc --strict` (its
// @ts-expect-error lines prove misuse is rejected), then the compiled
// default-import form runs against a real Redis. The node16 tests do the same
// for an ES module and a CommonJS usage that import 'dist-lock' by name
// through package.json's "exports" (index.d.mts and index.d.ts).

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
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

test('the generated binding.d.ts compiles with tsc --strict', () => {
  const typings = path.join(__dirname, '..', 'binding.d.ts')
  execFileSync(process.execPath, [tsc, '--strict', '--noEmit', '--target', 'es2022', '--module', 'nodenext', '--types', 'node', typings], {
    encoding: 'utf8',
  })
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

test('`await using lock = await distLock.lock(name)` compiles and releases at the end of its scope', async () => {
  const { lockScope } = compiled('dispose')
  const { heldInside, key } = await lockScope(server.url, 'ts-lock')
  assert.equal(heldInside, true)
  assert.equal(key, 'lock:ts-lock')
  assert.equal(server.cli('EXISTS', key), '0')
})

test('2.0.x form from TypeScript: acquire(name, ownerLabel)', async () => {
  const { ownerForm } = compiled('dispose')
  assert.equal(await ownerForm(server.url, 'ts-owner'), true)
})

test('a node-redis 4 client (its options typed as possibly undefined) compiles and works', async () => {
  const { viaRedis4 } = compiled('node-redis-4')
  assert.equal(await viaRedis4(server.url), true)
})

test('`using` from TypeScript runs the function with the lock', async () => {
  const { usingScope } = compiled('dispose')
  const token = await usingScope(server.url, 'ts-using')
  assert.ok(Number.isSafeInteger(token) && token >= 1)
  assert.equal(server.cli('EXISTS', 'lock:ts-using'), '0')
})

// "module": "node16": 'dist-lock' resolved BY NAME through package.json's
// "exports", as in a user's project: types/node16 is copied into a temporary
// project whose node_modules/dist-lock links to this package (and
// node_modules/@types to this package's @types, for @types/node).

/** A temporary copy of types/node16 where 'dist-lock' is an installed package. */
function node16Project() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-ts16-'))
  fs.cpSync(path.join(__dirname, 'types', 'node16'), dir, { recursive: true })
  const root = path.join(__dirname, '..')
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'dist-lock'), 'dir')
  fs.symlinkSync(path.join(root, 'node_modules', '@types'), path.join(dir, 'node_modules', '@types'), 'dir')
  return dir
}

test('node16: ESM and CJS usages resolve their typings through "exports"', (t) => {
  const dir = node16Project()
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  // Throws with tsc's diagnostics on stdout if any type error is found.
  const explained = execFileSync(process.execPath, [tsc, '-p', dir, '--explainFiles'], {
    encoding: 'utf8',
    cwd: dir,
    timeout: 180_000,
  })
  // The "import" condition gave usage.mts index.d.mts; the "require"
  // condition gave usage.cts index.d.ts.
  assert.match(explained, /Imported via 'dist-lock' from file 'usage\.mts' with packageId 'dist-lock\/index\.d\.mts@/)
  assert.match(explained, /Imported via 'dist-lock' from file 'usage\.cts' with packageId 'dist-lock\/index\.d\.ts@/)
  assert.doesNotMatch(explained, /from file 'usage\.mts' with packageId 'dist-lock\/index\.d\.ts@/)
})

test('node16: the compiled ESM and CJS usages run against Redis', async (t) => {
  const dir = node16Project()
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, 'out')
  execFileSync(process.execPath, [tsc, '-p', dir, '--noEmit', 'false', '--outDir', out], {
    encoding: 'utf8',
    cwd: dir,
    timeout: 180_000,
  })
  const esm = await import(pathToFileURL(path.join(out, 'usage.mjs')).href)
  const result = await esm.run(server.url)
  assert.equal(result.released, true)
  assert.equal(result.sameFactory, true)
  assert.ok(Number.isSafeInteger(result.token) && result.token >= 1)

  const cjs = require(path.join(out, 'usage.cjs'))
  const cjsResult = await cjs.run(server.url)
  assert.equal(cjsResult.released, true)
  assert.ok(Number.isSafeInteger(cjsResult.token) && cjsResult.token >= 1)
})
