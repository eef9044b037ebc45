'use strict'

// The command-line tool, bin/dist-lock.js, run as a subprocess against a
// throwaway redis-server: mutual exclusion of `run`, exit statuses, waiting
// and giving up, a lost lock, signals, `status`, the environment given to the
// command, and --help / --version.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { startRedis, freePort } = require('./helpers/redis-server.js')
const { root, sleep, spawnNode } = require('./helpers/util.js')

const cli = path.join(root, 'bin', 'dist-lock.js')
const node = process.execPath
const { version } = require('../package.json')

// No test may hang: each has this bound, and each process a shorter one.
const TEST_TIMEOUT = { timeout: 60_000 }
const PROCESS_TIMEOUT_MS = 30_000

let server
let tmpDir
let closedUrl // a port where nothing listens
const children = new Set()
let counter = 0

before(async () => {
  server = await startRedis()
  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-cli-'))
  closedUrl = `redis://127.0.0.1:${await freePort()}`
})

after(async () => {
  for (const child of children) child.kill('SIGKILL')
  await server.stop()
  fs.rmSync(tmpDir, { recursive: true, force: true })
})

/** A resource name used by one test only. */
function resource(label) {
  counter += 1
  return `cli-${label}-${process.pid}-${counter}`
}

/** A path in the temporary folder, unique to the caller. */
function tmpFile(label) {
  counter += 1
  return path.join(tmpDir, `${label}-${counter}`)
}

/** Spawns `dist-lock args...`: { child, exited, waitFor } (see spawnNode). */
function dl(args, { env, timeoutMs = PROCESS_TIMEOUT_MS } = {}) {
  return spawnNode([cli, ...args], { children, env, timeoutMs, what: `dist-lock ${args.join(' ')}` })
}

/** Runs `dist-lock args...` to its end: { code, signal, stdout, stderr, ms }. */
function dlExit(args, options) {
  return dl(args, options).exited
}

/** `dist-lock run --redis <url> [options] <name> -- node -e <script> [args]`. */
function runNode(name, script, { options = [], args = [], env, url = server.url } = {}) {
  return dl(['run', '--redis', url, ...options, name, '--', node, '-e', script, ...args], { env })
}

/** `dist-lock status --redis <url> <name>`: { code, stdout, ... }. */
function status(name, url = server.url) {
  return dlExit(['status', '--redis', url, name])
}

/** Resolves once `check()` is true; rejects after `ms`. */
async function until(check, ms, what) {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not true within ${ms} ms`)
    await sleep(50)
  }
}

// A command that prints "ready" and runs until its stdin (that of dist-lock,
// a pipe from the test) is closed; it then exits with status 0.
const holdUntilStdinCloses = `
  process.stdout.write('ready\\n')
  process.stdin.resume()
  process.stdin.on('end', () => process.exit(0))`

// A command that prints "ready" and sleeps 30 s; on SIGTERM it writes the
// file argv[1], and exits with status argv[2] after argv[3] ms (or, with no
// argv[2], ignores the signal).
const sleeperWritingOnTerm = `
  const [marker, code, delay] = process.argv.slice(1)
  process.on('SIGTERM', () => {
    require('node:fs').writeFileSync(marker, 'SIGTERM')
    if (code !== undefined) setTimeout(() => process.exit(Number(code)), Number(delay || 0))
  })
  process.stdout.write('ready\\n')
  setTimeout(() => {}, 30000)`

test('two runs of one resource take turns: their commands never overlap', TEST_TIMEOUT, async () => {
  const name = resource('serial')
  const log = tmpFile('serial-log')
  const script = `
    const fs = require('node:fs')
    const [log, id] = process.argv.slice(1)
    fs.appendFileSync(log, 'start ' + id + '\\n')
    setTimeout(() => fs.appendFileSync(log, 'end ' + id + '\\n'), 300)`
  const ids = ['a', 'b', 'c']
  const results = await Promise.all(ids.map((id) => runNode(name, script, { args: [log, id] }).exited))
  for (const r of results) assert.equal(r.code, 0, r.stderr)
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n')
  assert.equal(lines.length, 2 * ids.length, lines.join('|'))
  for (let i = 0; i < lines.length; i += 2) {
    const id = lines[i].slice('start '.length)
    assert.deepEqual([lines[i], lines[i + 1]], [`start ${id}`, `end ${id}`], `interleaved: ${lines.join('|')}`)
  }
  assert.deepEqual(lines.filter((l) => l.startsWith('start')).map((l) => l.slice(6)).sort(), ids)
  assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
})

test("the command's exit status passes through; a signal gives 128 + n", TEST_TIMEOUT, async () => {
  const name = resource('exit')
  const notExecutable = tmpFile('not-executable')
  fs.writeFileSync(notExecutable, '#!/bin/sh\nexit 0\n', { mode: 0o644 })
  const [seven, zero, killed, notFound, cannotExecute] = await Promise.all([
    runNode(name, 'process.exit(7)').exited,
    runNode(name, '').exited,
    runNode(name, "process.kill(process.pid, 'SIGKILL')").exited,
    dlExit(['run', '--redis', server.url, name, '--', 'dist-lock-test-no-such-command']),
    dlExit(['run', '--redis', server.url, name, '--', notExecutable]),
  ])
  assert.equal(seven.code, 7, seven.stderr)
  assert.equal(zero.code, 0, zero.stderr)
  assert.equal(killed.code, 128 + os.constants.signals.SIGKILL, killed.stderr)
  assert.equal(notFound.code, 127, notFound.stderr)
  assert.match(notFound.stderr, /^dist-lock: .*command not found \(ENOENT\)/m)
  assert.equal(cannotExecute.code, 126, cannotExecute.stderr)
  assert.match(cannotExecute.stderr, /EACCES/)
  // Whatever happened to the command, the lock was released.
  const after = await status(name)
  assert.equal(after.stdout, 'free\n')
})

test('usage errors exit with 64 before any contact with Redis', TEST_TIMEOUT, async () => {
  // --redis points at a closed port: a run that got as far as Redis would exit 69.
  const r = ['--redis', closedUrl]
  const cases = [
    [],
    ['run'],
    ['run', ...r],
    ['run', ...r, 'res'],
    ['run', ...r, 'res', '--'],
    ['run', ...r, 'res', 'true'],
    ['run', ...r, 'res', 'extra', '--', 'true'],
    ['run', ...r, '--bogus', 'res', '--', 'true'],
    ['run', ...r, '-x', 'res', '--', 'true'],
    ['run', ...r, '--ttl', 'abc', 'res', '--', 'true'],
    ['run', ...r, '--ttl=0', 'res', '--', 'true'],
    ['run', ...r, '--ttl', '1.5', 'res', '--', 'true'],
    ['run', ...r, '--wait', '-1', 'res', '--', 'true'],
    ['run', ...r, '--ttl'],
    ['run', ...r, '--wait', '10', '--no-wait', 'res', '--', 'true'],
    ['run', ...r, '--fair=yes', 'res', '--', 'true'],
    ['run', ...r, '', '--', 'true'],
    ['status', ...r],
    ['status', ...r, '--ttl', '5', 'res'],
    ['status', ...r, 'res', '--', 'true'],
    ['frobnicate', 'res'],
    // A Redis URL the library refuses is a usage error too.
    ['run', '--redis', 'http://127.0.0.1:1', 'res', '--', 'true'],
    ['status', '--redis', 'http://127.0.0.1:1', 'res'],
  ]
  const results = await Promise.all(cases.map((args) => dlExit(args)))
  results.forEach((res, i) => {
    const what = `dist-lock ${JSON.stringify(cases[i])}: ${res.stderr}`
    assert.equal(res.code, 64, what)
    assert.match(res.stderr, /^dist-lock: \S/, what)
    assert.equal(res.stdout, '', what)
  })
  // The short usage follows a command-line error.
  assert.match(results[0].stderr, /usage: dist-lock run/)
})

test('--no-wait and --wait give up with 75 on a held lock, without running the command', TEST_TIMEOUT, async () => {
  const name = resource('busy')
  const holder = runNode(name, holdUntilStdinCloses)
  await holder.waitFor('ready')
  try {
    const marker = tmpFile('busy-marker')
    const touch = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`
    const noWait = await runNode(name, touch, { options: ['--no-wait'] }).exited
    assert.equal(noWait.code, 75, noWait.stderr)
    assert.match(noWait.stderr, /^dist-lock: lock ".*" is held by someone else/m)
    assert.ok(noWait.ms < 15_000, `--no-wait took ${noWait.ms} ms`)

    const waited = await runNode(name, touch, { options: ['--wait=300'] }).exited
    assert.equal(waited.code, 75, waited.stderr)
    assert.match(waited.stderr, /not acquired within 300 ms/)
    assert.ok(waited.ms >= 250, `--wait 300 gave up after ${waited.ms} ms`)

    const quiet = await runNode(name, touch, { options: ['--no-wait', '-q'] }).exited
    assert.equal(quiet.code, 75)
    assert.equal(quiet.stderr, '')

    assert.equal(fs.existsSync(marker), false, 'the command ran without the lock')
  } finally {
    holder.child.stdin.end()
  }
  assert.equal((await holder.exited).code, 0)
  // Free again: --no-wait now runs the command.
  const r = await runNode(name, 'process.exit(5)', { options: ['--no-wait'] }).exited
  assert.equal(r.code, 5, r.stderr)
})

test('a lost lock: the command gets SIGTERM and dist-lock exits with 76', TEST_TIMEOUT, async () => {
  const deleted = resource('lost-del')
  const taken = resource('lost-taken')
  const markerDeleted = tmpFile('lost-del-marker')
  const markerTaken = tmpFile('lost-taken-marker')
  const options = ['--ttl', '1000']
  const a = runNode(deleted, sleeperWritingOnTerm, { options, args: [markerDeleted, '0'] })
  const b = runNode(taken, sleeperWritingOnTerm, { options, args: [markerTaken, '0'] })
  await Promise.all([a.waitFor('ready'), b.waitFor('ready')])
  // The next extension (within ttl/3) finds the key gone, or holding
  // another owner's id.
  server.cli('DEL', `lock:${deleted}`)
  server.cli('SET', `lock:${taken}`, 'someone-else', 'PX', '60000')
  const [ra, rb] = await Promise.all([a.exited, b.exited])
  for (const [r, marker] of [[ra, markerDeleted], [rb, markerTaken]]) {
    assert.equal(r.code, 76, r.stderr)
    assert.match(r.stderr, /^dist-lock: lock ".*" is lost: .*\(ELOCKLOST\); sending SIGTERM to the command$/m)
    assert.equal(fs.readFileSync(marker, 'utf8'), 'SIGTERM')
  }
  // The other owner's lock was left alone.
  assert.equal(server.cli('GET', `lock:${taken}`), 'someone-else')
})

test('a lost lock: a command that ignores SIGTERM gets SIGKILL after --kill-after', TEST_TIMEOUT, async () => {
  const name = resource('lost-kill')
  const marker = tmpFile('lost-kill-marker')
  // No exit status given: the command ignores SIGTERM.
  const run = runNode(name, sleeperWritingOnTerm, { options: ['--ttl', '1000', '--kill-after', '500'], args: [marker] })
  await run.waitFor('ready')
  server.cli('DEL', `lock:${name}`)
  const r = await run.exited
  assert.equal(r.code, 76, r.stderr)
  assert.equal(fs.readFileSync(marker, 'utf8'), 'SIGTERM')
  assert.match(r.stderr, /sending SIGKILL/)
})

test('status: locked (1) while a run holds the resource, free (0) after', TEST_TIMEOUT, async () => {
  const name = resource('status')
  assert.deepEqual(pick(await status(name)), { code: 0, stdout: 'free\n' })
  const holder = runNode(name, holdUntilStdinCloses)
  await holder.waitFor('ready')
  try {
    assert.deepEqual(pick(await status(name)), { code: 1, stdout: 'locked\n' })
  } finally {
    holder.child.stdin.end()
  }
  assert.equal((await holder.exited).code, 0)
  assert.deepEqual(pick(await status(name)), { code: 0, stdout: 'free\n' })
})

function pick({ code, stdout }) {
  return { code, stdout }
}

test('--key-prefix selects the key: <prefix><resource>', TEST_TIMEOUT, async () => {
  const name = resource('prefix')
  const holder = runNode(name, holdUntilStdinCloses, { options: ['--key-prefix', 'cli-test:', '--fair'] })
  await holder.waitFor('ready')
  try {
    assert.equal(server.cli('EXISTS', `cli-test:${name}`), '1')
    assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
    const prefixed = await dlExit(['status', '--redis', server.url, '--key-prefix=cli-test:', name])
    assert.deepEqual(pick(prefixed), { code: 1, stdout: 'locked\n' })
    assert.deepEqual(pick(await status(name)), { code: 0, stdout: 'free\n' })
  } finally {
    holder.child.stdin.end()
  }
  assert.equal((await holder.exited).code, 0)
  assert.equal(server.cli('EXISTS', `cli-test:${name}`), '0')
})

test('Redis unreachable: run and status exit with 69 in bounded time', TEST_TIMEOUT, async () => {
  const name = resource('down')
  const marker = tmpFile('down-marker')
  const touch = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`
  const [run, stat] = await Promise.all([
    runNode(name, touch, { url: closedUrl }).exited,
    status(name, closedUrl),
  ])
  assert.equal(run.code, 69, run.stderr)
  assert.match(run.stderr, /^dist-lock: cannot acquire lock ".*": .*\(ECONNECTION\)$/m)
  assert.equal(stat.code, 69, stat.stderr)
  assert.match(stat.stderr, /\(ECONNECTION\)/)
  assert.equal(stat.stdout, '')
  assert.equal(fs.existsSync(marker), false)
  // Bounded by the library's connectTimeout + commandTimeout (7 s), with room.
  assert.ok(run.ms < 20_000 && stat.ms < 20_000, `${run.ms} ms, ${stat.ms} ms`)
})

test('the command gets DIST_LOCK_RESOURCE, DIST_LOCK_ID and DIST_LOCK_FENCING_TOKEN', TEST_TIMEOUT, async () => {
  const name = resource('env')
  const printEnv = `
    const { DIST_LOCK_RESOURCE, DIST_LOCK_ID, DIST_LOCK_FENCING_TOKEN, OTHER } = process.env
    console.log(JSON.stringify({ DIST_LOCK_RESOURCE, DIST_LOCK_ID, DIST_LOCK_FENCING_TOKEN, OTHER }))`
  const args = ['run', name, '--', node, '-e', printEnv]
  // The Redis URL from DIST_LOCK_REDIS_URL, then from REDIS_URL; --redis wins over both.
  const first = await dlExit(args, { env: { DIST_LOCK_REDIS_URL: server.url, REDIS_URL: closedUrl, OTHER: 'kept' } })
  const second = await dlExit(args, { env: { DIST_LOCK_REDIS_URL: '', REDIS_URL: server.url, OTHER: 'kept' } })
  const third = await dlExit(['--redis', server.url, ...args], {
    env: { DIST_LOCK_REDIS_URL: closedUrl, REDIS_URL: closedUrl, OTHER: 'kept' },
  })
  const seen = [first, second, third].map((r) => {
    assert.equal(r.code, 0, r.stderr)
    return JSON.parse(r.stdout)
  })
  const tokens = seen.map((e) => {
    assert.equal(e.DIST_LOCK_RESOURCE, name)
    assert.match(e.DIST_LOCK_ID, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    assert.match(e.DIST_LOCK_FENCING_TOKEN, /^[1-9][0-9]*$/)
    assert.equal(e.OTHER, 'kept')
    return Number(e.DIST_LOCK_FENCING_TOKEN)
  })
  assert.ok(tokens[0] < tokens[1] && tokens[1] < tokens[2], `tokens ${tokens}`)
  assert.equal(new Set(seen.map((e) => e.DIST_LOCK_ID)).size, 3)
})

test('SIGTERM to dist-lock is passed to the command; the lock is released after it exits', TEST_TIMEOUT, async () => {
  const name = resource('forward')
  const marker = tmpFile('forward-marker')
  // The command takes 500 ms to exit after SIGTERM, with status 3.
  const run = runNode(name, sleeperWritingOnTerm, { args: [marker, '3', '500'] })
  await run.waitFor('ready')
  run.child.kill('SIGTERM')
  // Still held while the command winds down.
  await sleep(100)
  assert.equal(server.cli('EXISTS', `lock:${name}`), '1')
  const r = await run.exited
  assert.equal(r.code, 3, r.stderr)
  assert.equal(fs.readFileSync(marker, 'utf8'), 'SIGTERM')
  assert.equal(server.cli('EXISTS', `lock:${name}`), '0')

  // A command that does not handle SIGINT dies of it: 128 + 2.
  const run2 = runNode(name, "process.stdout.write('ready\\n'); setTimeout(() => {}, 30000)")
  await run2.waitFor('ready')
  run2.child.kill('SIGINT')
  const r2 = await run2.exited
  assert.equal(r2.code, 130, r2.stderr)
  assert.equal(server.cli('EXISTS', `lock:${name}`), '0')
})

test('SIGINT or SIGTERM while waiting: 130 / 143, command not run, nothing locked', TEST_TIMEOUT, async () => {
  const name = resource('abort')
  const holder = runNode(name, holdUntilStdinCloses)
  await holder.waitFor('ready')
  const marker = tmpFile('abort-marker')
  const touch = `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'ran')`
  try {
    for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]]) {
      const waiter = runNode(name, touch)
      // The waiter subscribes to the release channel once it has been refused.
      await until(
        () => server.cli('PUBSUB', 'NUMSUB', `{lock:${name}}:released`).split('\n')[1] === '1',
        20_000,
        'the waiter subscribed',
      )
      waiter.child.kill(signal)
      const r = await waiter.exited
      assert.equal(r.code, code, r.stderr)
      assert.match(r.stderr, new RegExp(`${signal} received while waiting for lock`))
      await until(
        () => server.cli('PUBSUB', 'NUMSUB', `{lock:${name}}:released`).split('\n')[1] === '0',
        20_000,
        'the waiter unsubscribed',
      )
    }
  } finally {
    holder.child.stdin.end()
  }
  assert.equal((await holder.exited).code, 0)
  assert.equal(fs.existsSync(marker), false, 'an interrupted waiter ran its command')
  assert.deepEqual(pick(await status(name)), { code: 0, stdout: 'free\n' })
})

test('--help, -h and help print the manual; --version the package version', TEST_TIMEOUT, async () => {
  const [help, h, helpCmd, runHelp, ver] = await Promise.all([
    dlExit(['--help']),
    dlExit(['-h']),
    dlExit(['help']),
    dlExit(['run', '--help']),
    dlExit(['--version']),
  ])
  for (const r of [help, h, helpCmd, runHelp]) {
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stdout, help.stdout)
    assert.equal(r.stderr, '')
  }
  const text = help.stdout
  const sections = ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'COMMANDS', 'OPTIONS', 'EXIT STATUS', 'ENVIRONMENT', 'EXAMPLES']
  for (const section of sections) {
    assert.match(text, new RegExp(`^${section}$`, 'm'), section)
  }
  for (const word of [
    'run', 'status', 'help',
    '--redis', '--key-prefix', '--ttl', '--wait', '--no-wait', '--fair', '--kill-after',
    '--quiet', '-q', '--help', '-h', '--version',
    'DIST_LOCK_REDIS_URL', 'REDIS_URL', 'DIST_LOCK_RESOURCE', 'DIST_LOCK_ID', 'DIST_LOCK_FENCING_TOKEN',
  ]) {
    assert.ok(text.includes(word), `--help does not mention ${word}`)
  }
  const exitStatus = text.slice(text.indexOf('\nEXIT STATUS\n'), text.indexOf('\nENVIRONMENT\n'))
  for (const code of ['128+n', '64', '69', '70', '75', '76', '126', '127', '129', '130', '143']) {
    const listed = [`    ${code}`, ` ${code},`, `, ${code}`].some((form) => exitStatus.includes(form))
    assert.ok(listed, `exit status ${code} is not listed`)
  }
  for (const line of text.split('\n')) assert.ok(line.length <= 80, `line too long: ${line}`)

  assert.equal(ver.code, 0, ver.stderr)
  assert.equal(ver.stdout, `${version}\n`)
})

// The manual is written once (lib/cli/help.js); docs/cli.md quotes it.
test('docs/cli.md holds the --help text verbatim between its markers', TEST_TIMEOUT, async () => {
  const help = await dlExit(['--help'])
  assert.equal(help.code, 0, help.stderr)
  const doc = fs.readFileSync(path.join(root, 'docs', 'cli.md'), 'utf8')
  const block = /<!-- BEGIN dist-lock help -->\n```text\n([\s\S]*?)```\n<!-- END dist-lock help -->/.exec(doc)
  assert.ok(block, 'docs/cli.md has no help block between its markers')
  assert.equal(block[1], help.stdout, 'docs/cli.md differs from `dist-lock --help`: copy the output of lib/cli/help.js there')
})

/** Whether process `pid` exists. */
function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

// npx passes no signal on: killing it must not leave `dist-lock run` and its
// command running with the lock auto-extended for ever. An intermediate
// parent (in the role of npx) starts `dist-lock run`, and is SIGKILLed.
test('orphaned (its parent killed, no signal passed on): the command ends and the lock is released', TEST_TIMEOUT, async () => {
  const name = resource('orphan')
  const marker = tmpFile('orphan-marker')
  const pidFile = tmpFile('orphan-pid')
  // The command writes its pid, prints "ready" and would run for 30 s; on
  // SIGTERM it writes the marker and exits.
  const command = `
    require('node:fs').writeFileSync(process.argv[2], String(process.pid))
    process.on('SIGTERM', () => { require('node:fs').writeFileSync(process.argv[1], 'SIGTERM'); process.exit(0) })
    process.stdout.write('ready\\n')
    setTimeout(() => {}, 30000)`
  const distLockPidFile = tmpFile('orphan-dist-lock-pid')
  const parentScript = `
    const { spawn } = require('node:child_process')
    const run = spawn(process.execPath, process.argv.slice(2), { stdio: 'inherit' })
    require('node:fs').writeFileSync(process.argv[1], String(run.pid))
    setTimeout(() => {}, 60000)`
  const parent = spawnNode(
    ['-e', parentScript, distLockPidFile, cli, 'run', '--redis', server.url, '--ttl', '3000', name, '--', node, '-e', command, marker, pidFile],
    { children, timeoutMs: PROCESS_TIMEOUT_MS, what: 'the intermediate parent' },
  )
  await parent.waitFor('ready')
  const distLockPid = Number(fs.readFileSync(distLockPidFile, 'utf8'))
  const commandPid = Number(fs.readFileSync(pidFile, 'utf8'))
  assert.equal(server.cli('EXISTS', `lock:${name}`), '1', 'held while the command runs')
  parent.child.kill('SIGKILL')
  await parent.exited.catch(() => {})
  try {
    // Generous bounds: the orphan is noticed within about a second.
    await until(() => server.cli('EXISTS', `lock:${name}`) === '0', 10_000, 'the lock is released')
    await until(() => !alive(commandPid), 10_000, 'the command has ended')
    await until(() => !alive(distLockPid), 10_000, 'dist-lock has exited')
  } finally {
    for (const pid of [commandPid, distLockPid]) if (alive(pid)) process.kill(pid, 'SIGKILL')
  }
  assert.equal(fs.readFileSync(marker, 'utf8'), 'SIGTERM', 'the command got SIGTERM')
})
