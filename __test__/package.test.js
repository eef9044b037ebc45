'use strict'

// The package as users get it: `npm pack` of dist-lock and of the
// linux-x64-gnu binary package, both installed offline into an empty project
// with a PATH that has no Rust toolchain, then the README's first runnable
// example run there against a test Redis. Also: what the tarballs hold, the
// per-platform manifests, and the one clear error (code ENATIVE) when the
// platform's binary is missing, broken or does not exist.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { startRedis } = require('./helpers/redis-server.js')

const root = path.join(__dirname, '..')
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'))

// Each npm or node step: npm pack and install may take a minute on a busy
// machine; nothing here should take longer than this.
const STEP_MS = 180_000

// napi target triple -> platform name of its package (`<name>-<platform>`).
const PLATFORMS = {
  'x86_64-unknown-linux-gnu': { name: 'linux-x64-gnu', os: 'linux', cpu: 'x64', libc: 'glibc' },
  'aarch64-unknown-linux-gnu': { name: 'linux-arm64-gnu', os: 'linux', cpu: 'arm64', libc: 'glibc' },
  'x86_64-unknown-linux-musl': { name: 'linux-x64-musl', os: 'linux', cpu: 'x64', libc: 'musl' },
  'aarch64-unknown-linux-musl': { name: 'linux-arm64-musl', os: 'linux', cpu: 'arm64', libc: 'musl' },
  'x86_64-apple-darwin': { name: 'darwin-x64', os: 'darwin', cpu: 'x64' },
  'aarch64-apple-darwin': { name: 'darwin-arm64', os: 'darwin', cpu: 'arm64' },
  'x86_64-pc-windows-msvc': { name: 'win32-x64-msvc', os: 'win32', cpu: 'x64' },
}

const PLATFORM = 'linux-x64-gnu'
const BINARY = `${pkg.napi.binaryName}.${PLATFORM}.node`
const PLATFORM_PACKAGE = `${pkg.name}-${PLATFORM}`

function isGlibc() {
  try {
    return Boolean(process.report.getReport().header.glibcVersionRuntime)
  } catch {
    return false
  }
}

// The install test needs the built binary of this machine's platform.
const skip =
  process.platform !== 'linux' || process.arch !== 'x64' || !isGlibc()
    ? 'the install test packs the linux-x64-gnu binary: linux x64 glibc only'
    : !fs.existsSync(path.join(root, BINARY))
      ? `${BINARY} is not built (npm run build)`
      : false

/** PATH without the folders that hold a `cargo` or `rustc` executable. */
function pathWithoutRust(PATH) {
  const executable = (file) => {
    try {
      fs.accessSync(file, fs.constants.X_OK)
      return fs.statSync(file).isFile()
    } catch {
      return false
    }
  }
  return PATH.split(path.delimiter)
    .filter((dir) => dir !== '' && !['cargo', 'rustc'].some((exe) => executable(path.join(dir, exe))))
    .join(path.delimiter)
}

/**
 * The environment of the child processes: this one's, less what `npm test`
 * and `node --test` hand down (npm_* config, the test runner's context) and
 * the binding loader's overrides, with a PATH that has no Rust toolchain.
 */
function childEnv(extra = {}) {
  const env = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || key.startsWith('NAPI_RS_') || key === 'NODE_TEST_CONTEXT') continue
    env[key] = value
  }
  env.PATH = pathWithoutRust(process.env.PATH || '')
  env.NO_UPDATE_NOTIFIER = '1'
  return { ...env, ...extra }
}

/** Runs a command to its end (killed after `timeout` ms); never rejects on a non-zero exit. */
function run(file, args, { cwd, env = childEnv(), timeout = STEP_MS } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    execFile(
      file,
      args,
      { cwd, env, timeout, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number' && !err.killed && err.signal == null) {
          reject(err) // could not start it
          return
        }
        const ms = Date.now() - started
        if (err && (err.killed || err.signal === 'SIGKILL') && ms >= timeout) {
          reject(new Error(`${file} ${args.join(' ')} did not finish within ${timeout} ms\n${stdout}\n${stderr}`))
          return
        }
        resolve({ code: err ? err.code : 0, signal: err ? err.signal : null, stdout, stderr })
      },
    )
  })
}

function describeRun(what, r) {
  return `${what}: exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`
}

/** `npm pack` in `dir` into `dest`; gives the tarball's path and its file list. */
async function npmPack(dir, dest, npmArgs) {
  // --ignore-scripts: packing must not run `prepare` (it builds the addon).
  const r = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dest, ...npmArgs], {
    cwd: dir,
  })
  assert.equal(r.code, 0, describeRun(`npm pack in ${dir}`, r))
  const [result] = JSON.parse(r.stdout)
  return { tarball: path.join(dest, result.filename), files: result.files.map((f) => f.path).sort() }
}

/**
 * The README's quick-start example: the first JavaScript code block of its
 * "Example" section that loads 'dist-lock' and connects to a Redis URL
 * (literal or `REDIS_URL`).
 */
function readmeExample() {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
  const start = readme.search(/^Example\n-+\n/m)
  assert.ok(start >= 0, 'README.md has an "Example" section')
  const text = readme.slice(start)
  const blocks = [...text.matchAll(/^```(js|javascript|mjs|cjs)[^\n]*\n([\s\S]*?)^```/gm)]
  for (const [, lang, code] of blocks) {
    const loads = /require\(\s*['"]dist-lock['"]\s*\)|from\s+['"]dist-lock['"]/.test(code)
    if (loads && /redis:\/\/|REDIS_URL/.test(code)) {
      const esm = lang === 'mjs' || /^\s*import\s/m.test(code)
      return { code, esm }
    }
  }
  throw new Error('README.md has no JavaScript example that loads dist-lock and connects to Redis')
}

let server
let tmp
let project
let packed
let platformPacked
let packOutput
let npmrc

function npmIsolation() {
  // An empty user and global npm config: the install sees no registry,
  // proxy or `omit` setting of this machine. The cache is new and empty.
  return [
    '--userconfig',
    path.join(npmrc, 'user'),
    '--globalconfig',
    path.join(npmrc, 'global'),
    '--cache',
    path.join(tmp, 'npm-cache'),
  ]
}

before(
  async () => {
    if (skip) return
    server = await startRedis()
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-package-'))
    npmrc = path.join(tmp, 'npmrc')
    fs.mkdirSync(npmrc)
    fs.writeFileSync(path.join(npmrc, 'user'), '')
    fs.writeFileSync(path.join(npmrc, 'global'), '')
    const packs = path.join(tmp, 'packs')
    fs.mkdirSync(packs)

    packed = await npmPack(root, packs, npmIsolation())

    // The platform package as CI's publish job fills it: its manifest and
    // the binary that `napi artifacts` copies in.
    const platformDir = path.join(tmp, PLATFORM)
    fs.cpSync(path.join(root, 'npm', PLATFORM), platformDir, { recursive: true })
    fs.copyFileSync(path.join(root, BINARY), path.join(platformDir, BINARY))
    platformPacked = await npmPack(platformDir, packs, npmIsolation())

    // An empty project; both tarballs in one install, offline, scripts on.
    project = path.join(tmp, 'project')
    fs.mkdirSync(project)
    fs.writeFileSync(
      path.join(project, 'package.json'),
      JSON.stringify({ name: 'quick-start', version: '1.0.0', private: true }, null, 2),
    )
    const install = await run(
      'npm',
      [
        'install',
        '--offline',
        '--no-audit',
        '--no-fund',
        '--ignore-scripts=false',
        ...npmIsolation(),
        packed.tarball,
        platformPacked.tarball,
      ],
      { cwd: project },
    )
    packOutput = install
    assert.equal(install.code, 0, describeRun('npm install --offline', install))
  },
  { timeout: 4 * STEP_MS },
)

after(async () => {
  if (server) await server.stop()
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true })
})

test('the optional dependencies are the packages of napi.targets, at this version', () => {
  const expected = {}
  for (const target of pkg.napi.targets) {
    assert.ok(PLATFORMS[target], `unknown target ${target}`)
    expected[`${pkg.name}-${PLATFORMS[target].name}`] = pkg.version
  }
  assert.deepEqual(pkg.optionalDependencies, expected)
})

test('each npm/<platform> package matches its target and this version', () => {
  const dirs = fs.readdirSync(path.join(root, 'npm')).sort()
  assert.deepEqual(dirs, pkg.napi.targets.map((t) => PLATFORMS[t].name).sort())
  for (const target of pkg.napi.targets) {
    const p = PLATFORMS[target]
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'npm', p.name, 'package.json'), 'utf8'))
    const binary = `${pkg.napi.binaryName}.${p.name}.node`
    assert.equal(manifest.name, `${pkg.name}-${p.name}`)
    assert.equal(manifest.version, pkg.version, `${manifest.name} version`)
    assert.equal(manifest.main, binary)
    assert.deepEqual(manifest.files, [binary])
    assert.deepEqual(manifest.os, [p.os])
    assert.deepEqual(manifest.cpu, [p.cpu])
    assert.deepEqual(manifest.libc, p.libc ? [p.libc] : undefined, `${manifest.name} libc`)
    assert.equal(manifest.license, pkg.license)
    assert.deepEqual(manifest.engines, pkg.engines)
  }
})

test('npm pack --dry-run lists what a user needs and nothing else', async () => {
  const r = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root })
  assert.equal(r.code, 0, describeRun('npm pack --dry-run', r))
  const files = JSON.parse(r.stdout)[0].files.map((f) => f.path)
  const needed = [
    'package.json',
    'README.md',
    'LICENSE',
    'index.js',
    'index.d.ts',
    'index.mjs',
    'index.d.mts',
    'binding.js',
    'binding.d.ts',
    'lib/native.js',
    'lib/errors.js',
    'lib/manager.js',
    'lib/lock.js',
    'lib/core.js',
    'lib/options.js',
    'lib/connection.js',
    'lib/cli/args.js',
    'lib/cli/run.js',
    'lib/cli/status.js',
    'lib/cli/help.js',
  ]
  // Every file that package.json's entry points name.
  needed.push(...Object.values(pkg.bin || {}).map((f) => f.replace(/^\.\//, '')))
  for (const file of needed) assert.ok(files.includes(file), `the package lacks ${file}`)
  const allowed = /^(package\.json|README\.md|LICENSE|index\.(js|d\.ts|mjs|d\.mts)|binding\.(js|d\.ts)|lib\/(cli\/)?[\w.-]+\.js|bin\/[\w.-]+\.js)$/
  const extra = files.filter((f) => !allowed.test(f))
  assert.deepEqual(extra, [], 'files a user does not need (tests, sources, binaries)')
  assert.ok(!files.some((f) => f.endsWith('.node')), 'no native binary in the main package')
})

test('the exports and bin of package.json point at packed files', { skip }, () => {
  const targets = []
  const walk = (v) => {
    if (typeof v === 'string') targets.push(v.replace(/^\.\//, ''))
    else if (v && typeof v === 'object') Object.values(v).forEach(walk)
  }
  walk(pkg.exports)
  walk(pkg.bin)
  targets.push(pkg.main, pkg.types)
  for (const file of targets) assert.ok(packed.files.includes(file), `${file} is not in the tarball`)
  assert.deepEqual(platformPacked.files, [BINARY, 'README.md', 'package.json'].sort())
})

test('it installs offline without a Rust toolchain', { skip }, async () => {
  const cargo = await run('cargo', ['--version'], { cwd: project }).catch((err) => err)
  assert.equal(cargo.code, 'ENOENT', 'cargo must not be on the PATH of the install')
  const modules = path.join(project, 'node_modules')
  const installed = fs.readdirSync(modules).filter((n) => !n.startsWith('.')).sort()
  // Only the package and this platform's binary: the other platforms'
  // optional dependencies are skipped.
  assert.deepEqual(installed, [pkg.name, PLATFORM_PACKAGE].sort(), describeRun('npm install', packOutput))
  assert.ok(fs.existsSync(path.join(modules, PLATFORM_PACKAGE, BINARY)))
  assert.deepEqual(
    fs.readdirSync(path.join(modules, pkg.name)).filter((f) => f.endsWith('.node')),
    [],
    'the binary comes from its package, not from the main one',
  )
  for (const [name, file] of Object.entries(pkg.bin || {})) {
    const link = path.join(modules, '.bin', name)
    assert.equal(fs.realpathSync(link), fs.realpathSync(path.join(modules, pkg.name, file)))
  }
})

test('the README example runs in the installed project', { skip }, async () => {
  const { code, esm } = readmeExample()
  // Only the test Redis: the README's URL points at it.
  const program = code.replace(
    /redis:\/\/(?:127\.0\.0\.1|localhost)(?::6379)?(?=[/'"`\s])/g,
    `redis://127.0.0.1:${server.port}`,
  )
  assert.ok(!/:6379\b|port:\s*6379/.test(program), `the example still names port 6379:\n${program}`)
  const file = path.join(project, esm ? 'quick-start.mjs' : 'quick-start.js')
  fs.writeFileSync(file, program)

  const r = await run(process.execPath, [file], {
    cwd: project,
    env: childEnv({ REDIS_URL: server.url }),
    timeout: 60_000,
  })
  assert.equal(r.code, 0, describeRun('the README example', r))
  assert.equal(r.signal, null)
  assert.doesNotMatch(r.stderr, /Error/, describeRun('the README example', r))

  // It took a lock in the test Redis (its prefix's fencing counter is there)
  // and released it (no lock key is left).
  const keys = server.cli('--scan').split('\n').filter(Boolean)
  const fences = keys.filter((k) => k.endsWith(':fencing'))
  assert.ok(fences.length >= 1, `no lock was granted: keys ${JSON.stringify(keys)}`)
  for (const k of fences) assert.ok(Number(server.cli('GET', k)) >= 1)
  assert.deepEqual(keys.filter((k) => !k.endsWith(':fencing')), [], 'a lock was left behind')
})

test('the installed command line runs a command under a lock (npx dist-lock)', { skip }, async () => {
  const cli = path.join(project, 'node_modules', '.bin', 'dist-lock')
  const env = childEnv({ DIST_LOCK_REDIS_URL: server.url })
  const r = await run(cli, ['run', 'installed-cli', '--', process.execPath, '-e', 'process.exit(3)'], {
    cwd: project,
    env,
    timeout: 60_000,
  })
  assert.equal(r.code, 3, describeRun('dist-lock run', r))
  const status = await run(cli, ['status', 'installed-cli'], { cwd: project, env, timeout: 60_000 })
  assert.equal(status.code, 0, describeRun('dist-lock status', status))
  assert.equal(status.stdout.trim(), 'free')
})

test('the installed package loads by name from CommonJS and ES modules', { skip }, async () => {
  const script = [
    "import distLock, { DistLockError, LockLostError } from 'dist-lock'",
    "import { createRequire } from 'node:module'",
    'const cjs = createRequire(import.meta.url)(\'dist-lock\')',
    'console.log(JSON.stringify({',
    '  same: distLock === cjs && DistLockError === cjs.DistLockError,',
    '  lost: new LockLostError(\'x\') instanceof cjs.DistLockError,',
    "  esm: import.meta.resolve('dist-lock').endsWith('/index.mjs'),",
    '}))',
  ].join('\n')
  const r = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: project, timeout: 60_000 })
  assert.equal(r.code, 0, describeRun('ESM import', r))
  assert.deepEqual(JSON.parse(r.stdout), { same: true, lost: true, esm: true })
})

/** A copy of the installed project, changed by `change(nodeModules)`. */
function projectCopy(name, change) {
  const dir = path.join(tmp, name)
  fs.cpSync(project, dir, { recursive: true, verbatimSymlinks: true })
  change(path.join(dir, 'node_modules'))
  return dir
}

// Prints the load error as JSON, from require() or from import().
const REPORT_CJS =
  "try { require('dist-lock'); console.log('{}') } catch (e) {" +
  ' console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, cause: e.cause instanceof Error })) }'
const REPORT_ESM =
  "import('dist-lock').then(() => console.log('{}'), (e) =>" +
  ' console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, cause: e.cause instanceof Error })))'

async function loadError(dir, args = []) {
  const results = []
  for (const script of [REPORT_CJS, REPORT_ESM]) {
    const r = await run(process.execPath, [...args, '-e', script], { cwd: dir, timeout: 60_000 })
    assert.equal(r.code, 0, describeRun('load', r))
    results.push(JSON.parse(r.stdout))
  }
  assert.deepEqual(results[1], results[0], 'import() and require() fail alike')
  const [e] = results
  assert.equal(e.name, 'DistLockError')
  assert.equal(e.code, 'ENATIVE')
  assert.equal(e.cause, true, 'the load errors are kept as cause')
  return e.message
}

const BUILD_FROM_SOURCE = /Rust toolchain[\s\S]*clone[\s\S]*`npm install`/

test('without its platform package: one clear ENATIVE error', { skip }, async () => {
  const dir = projectCopy('missing', (modules) => fs.rmSync(path.join(modules, PLATFORM_PACKAGE), { recursive: true }))
  const message = await loadError(dir)
  assert.match(message, /for this platform: linux x64 \(glibc\)/)
  assert.ok(message.includes(`${PLATFORM_PACKAGE}@${pkg.version}`), message)
  assert.match(message, new RegExp(`No prebuilt binary was found for this platform: ${PLATFORM_PACKAGE} is not installed`))
  assert.match(message, /--omit=optional/)
  assert.match(message, BUILD_FROM_SOURCE)
  assert.doesNotMatch(message, /--build-from-source/)
  // Reinstalling cannot bring a package that was never published.
  assert.doesNotMatch(message, /Remove node_modules/)

  // Uncaught, it ends the process with that message and its code.
  const r = await run(process.execPath, ['-e', "require('dist-lock')"], { cwd: dir, timeout: 60_000 })
  assert.equal(r.code, 1)
  assert.match(r.stderr, /DistLockError: dist-lock could not load its native binary for this platform: linux x64/)
  assert.match(r.stderr, /code: 'ENATIVE'/)
})

test('NAPI_RS_NATIVE_LIBRARY_PATH may be relative to the working directory', { skip }, async () => {
  const dir = projectCopy('override', (modules) => {
    fs.rmSync(path.join(modules, PLATFORM_PACKAGE), { recursive: true })
  })
  fs.mkdirSync(path.join(dir, 'native'))
  fs.copyFileSync(path.join(root, BINARY), path.join(dir, 'native', BINARY))
  const script =
    "const m = require('dist-lock')('redis://127.0.0.1:1'); console.log(typeof m.acquire, process.env.NAPI_RS_NATIVE_LIBRARY_PATH); m.close()"
  for (const relative of [`native/${BINARY}`, `./native/${BINARY}`]) {
    const r = await run(process.execPath, ['-e', script], {
      cwd: dir,
      env: childEnv({ NAPI_RS_NATIVE_LIBRARY_PATH: relative }),
      timeout: 60_000,
    })
    assert.equal(r.code, 0, describeRun(`NAPI_RS_NATIVE_LIBRARY_PATH=${relative}`, r))
    assert.equal(r.stdout.trim(), `function ${path.join(dir, 'native', BINARY)}`)
  }
  // From another working directory, the same relative path finds nothing: ENATIVE.
  const elsewhere = path.join(dir, 'native')
  const r = await run(process.execPath, ['-e', "try { require('dist-lock') } catch (e) { console.log(e.code) }"], {
    cwd: elsewhere,
    env: childEnv({ NAPI_RS_NATIVE_LIBRARY_PATH: `native/${BINARY}`, NODE_PATH: path.join(dir, 'node_modules') }),
    timeout: 60_000,
  })
  assert.equal(r.stdout.trim(), 'ENATIVE', describeRun('from another folder', r))
})

test('with a broken binary: the error says the package is installed but did not load', { skip }, async () => {
  const dir = projectCopy('broken', (modules) =>
    fs.writeFileSync(path.join(modules, PLATFORM_PACKAGE, BINARY), 'not a shared object'),
  )
  const message = await loadError(dir)
  assert.match(message, new RegExp(`${PLATFORM_PACKAGE}@${pkg.version} is installed but did not load`))
  assert.match(message, /Load errors: .*(invalid ELF header|file too short)/)
})

test('on a platform without a prebuilt binary: the error lists those there are', { skip }, async () => {
  const dir = projectCopy('unsupported', () => {})
  const preload = path.join(dir, 'riscv64.js')
  fs.writeFileSync(preload, "Object.defineProperty(process, 'arch', { value: 'riscv64' })\n")
  const message = await loadError(dir, ['--require', preload])
  assert.match(message, /for this platform: linux riscv64 \(glibc\)/)
  assert.ok(message.includes(`${pkg.name}-linux-riscv64-gnu@${pkg.version}`), message)
  assert.match(message, /no prebuilt binary for this platform/)
  for (const target of pkg.napi.targets) assert.ok(message.includes(PLATFORMS[target].name), target)
  assert.match(message, BUILD_FROM_SOURCE)
})
