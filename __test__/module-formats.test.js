'use strict'

// require('dist-lock') and import distLock from 'dist-lock', by package
// name, so that resolution goes through the "exports" conditions of
// package.json: child Node processes in a temporary project whose
// node_modules/dist-lock links to this package.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { pathToFileURL } = require('node:url')
const { startRedis } = require('./helpers/redis-server.js')

const root = path.join(__dirname, '..')
const cjsExports = require('..')

let server
let dir

before(async () => {
  server = await startRedis()
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-formats-'))
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'formats', private: true }))
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'dist-lock'), 'dir')
})

after(async () => {
  await server.stop()
  fs.rmSync(dir, { recursive: true, force: true })
})

/** Runs `source` as `dir/<name>` in a child Node; gives the JSON it prints last. */
function runScript(name, source) {
  const file = path.join(dir, name)
  fs.writeFileSync(file, source)
  const env = { ...process.env, REDIS_URL: server.url }
  delete env.NODE_TEST_CONTEXT
  delete env.NODE_OPTIONS
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [file],
      { cwd: dir, env, timeout: 60_000, killSignal: 'SIGKILL', encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`${name} failed (${err.code ?? err.signal}):\n${stdout}\n${stderr}`))
          return
        }
        const lines = stdout.trim().split('\n')
        resolve(JSON.parse(lines[lines.length - 1]))
      },
    )
  })
}

const ERROR_CLASSES = [
  'DistLockError',
  'InvalidArgumentError',
  'ConnectionError',
  'RedisError',
  'LockLostError',
  'ClosedError',
  'NotReplicatedError',
  'EvictionError',
  'NotAcquiredError',
  'AbortError',
]

test('require by name: the CommonJS entry, a factory that locks', async () => {
  const result = await runScript(
    'cjs.cjs',
    `'use strict'
const distLock = require('dist-lock')
const { DistLockError, LockLostError } = require('dist-lock')
async function main() {
  const manager = distLock(process.env.REDIS_URL)
  const lock = await manager.acquire('formats-cjs', { maxRetries: 0 })
  const token = lock && lock.fencingToken
  const released = lock !== false && (await lock.release())
  await manager.close()
  console.log(JSON.stringify({
    resolved: require.resolve('dist-lock'),
    type: typeof distLock,
    named: typeof DistLockError === 'function' && new LockLostError('x') instanceof DistLockError,
    version: require('dist-lock/package.json').version,
    token,
    released,
  }))
}
main().catch((e) => { console.error(e); process.exit(1) })
`,
  )
  // Through the link (Node resolves symbolic links to real paths).
  assert.equal(result.resolved, path.join(fs.realpathSync(root), 'index.js'))
  assert.equal(result.type, 'function')
  assert.equal(result.named, true)
  assert.equal(result.version, require('../package.json').version)
  assert.ok(Number.isSafeInteger(result.token) && result.token >= 1)
  assert.equal(result.released, true)
})

test('import by name: the ES module entry, default and named error classes', async () => {
  const result = await runScript(
    'esm.mjs',
    `import distLock, { createDistLock, DistLock, Lock, ${ERROR_CLASSES.join(', ')} } from 'dist-lock'
import { createRequire } from 'node:module'

const cjs = createRequire(import.meta.url)('dist-lock')
const named = { createDistLock, DistLock, Lock, ${ERROR_CLASSES.join(', ')} }

const manager = distLock(process.env.REDIS_URL)
const lock = await manager.acquire('formats-esm', { maxRetries: 0 })
const isLock = lock instanceof cjs.Lock && lock instanceof Lock
const token = lock && lock.fencingToken
const released = lock !== false && (await lock.release())
await manager.close()

// An error class from either entry is the same class.
const lost = new LockLostError('lost')
const invalid = new cjs.InvalidArgumentError('bad')
let thrown
try {
  distLock(42)
} catch (e) {
  thrown = e
}

console.log(JSON.stringify({
  resolved: import.meta.resolve('dist-lock'),
  type: typeof distLock,
  sameDefault: distLock === cjs,
  sameNamed: Object.keys(named).filter((k) => named[k] !== cjs[k]),
  classes: ${JSON.stringify(ERROR_CLASSES)}.map((k) => typeof named[k]),
  crossInstanceof: [
    lost instanceof cjs.LockLostError,
    lost instanceof cjs.DistLockError,
    lost instanceof DistLockError,
    invalid instanceof InvalidArgumentError,
    invalid instanceof DistLockError,
    invalid instanceof TypeError,
    thrown instanceof InvalidArgumentError,
    thrown instanceof cjs.DistLockError,
  ],
  thrownCode: thrown && thrown.code,
  isLock,
  token,
  released,
}))
`,
  )
  assert.equal(result.resolved, pathToFileURL(path.join(fs.realpathSync(root), 'index.mjs')).href)
  assert.equal(result.type, 'function')
  assert.equal(result.sameDefault, true)
  assert.deepEqual(result.sameNamed, [])
  assert.deepEqual(result.classes, ERROR_CLASSES.map(() => 'function'))
  assert.deepEqual(result.crossInstanceof, [true, true, true, true, true, true, true, true])
  assert.equal(result.thrownCode, 'EINVALIDARG')
  assert.equal(result.isLock, true)
  assert.ok(Number.isSafeInteger(result.token) && result.token >= 1)
  assert.equal(result.released, true)
})

test('the ES module entry has a named export for every export of index.js', async () => {
  const result = await runScript(
    'namespace.mjs',
    `import * as ns from 'dist-lock'
import { createRequire } from 'node:module'
const cjs = createRequire(import.meta.url)('dist-lock')
console.log(JSON.stringify({
  keys: Object.keys(ns).sort(),
  differ: Object.keys(ns).filter((k) => k !== 'default' && ns[k] !== cjs[k]),
  defaultIsModule: ns.default === cjs,
}))
`,
  )
  // index.js's exports, as this process sees them, plus `default`.
  const expected = [...new Set([...Object.keys(cjsExports), 'default'])].sort()
  assert.deepEqual(result.keys, expected)
  assert.deepEqual(result.differ, [])
  assert.equal(result.defaultIsModule, true)
})

test('import() from CommonJS and require from ESM give the same module', async () => {
  const result = await runScript(
    'dynamic.cjs',
    `'use strict'
const cjs = require('dist-lock')
import('dist-lock').then((ns) => {
  console.log(JSON.stringify({
    same: ns.default === cjs && ns.DistLockError === cjs.DistLockError && ns.Lock === cjs.Lock,
  }))
})
`,
  )
  assert.deepEqual(result, { same: true })
})

test('only the entry points and package.json are exported', async () => {
  const result = await runScript(
    'deep.cjs',
    `'use strict'
const codes = []
for (const sub of ['dist-lock/lib/errors.js', 'dist-lock/binding.js', 'dist-lock/index.mjs']) {
  try {
    require(sub)
    codes.push('loaded')
  } catch (e) {
    codes.push(e.code)
  }
}
console.log(JSON.stringify({ codes, pkg: require('dist-lock/package.json').name }))
`,
  )
  assert.deepEqual(result.codes, [
    'ERR_PACKAGE_PATH_NOT_EXPORTED',
    'ERR_PACKAGE_PATH_NOT_EXPORTED',
    'ERR_PACKAGE_PATH_NOT_EXPORTED',
  ])
  assert.equal(result.pkg, 'dist-lock')
})
