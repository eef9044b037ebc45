#!/usr/bin/env node
'use strict'

// The dist-lock command-line tool.
//
//   dist-lock run [options] <resource> -- <command> [<arg>...]
//   dist-lock status [options] <resource>
//
// `run` takes the lock of <resource> (auto-extended while the command runs),
// runs the command with the same stdio, releases the lock when the command
// exits and exits with the command's status. If the lock is lost meanwhile,
// the command gets SIGTERM (and SIGKILL after --kill-after ms) and the exit
// status is 76. `status` prints "locked" or "free". The full description,
// options and exit codes are in HELP below (`dist-lock --help`).
//
// The library is loaded only once the arguments are valid, so `--help`,
// `--version` and usage errors work even where the native addon cannot load.

const { spawn } = require('node:child_process')
const { constants: osConstants } = require('node:os')
const { watchParent } = require('../lib/orphan.js')

// Exit codes (sysexits.h names where there is one).
const EXIT_USAGE = 64 // EX_USAGE: bad command line
const EXIT_UNAVAILABLE = 69 // EX_UNAVAILABLE: Redis unreachable, or a Redis error
const EXIT_SOFTWARE = 70 // EX_SOFTWARE: an internal error (a bug)
const EXIT_NOT_ACQUIRED = 75 // EX_TEMPFAIL: the lock is held by someone else
const EXIT_LOST = 76 // the lock was lost while the command ran
const EXIT_CANNOT_EXECUTE = 126 // the command exists but could not be started
const EXIT_NOT_FOUND = 127 // the command was not found

const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379'
const DEFAULT_KILL_AFTER_MS = 10_000
// The longest delay setTimeout accepts; a longer --kill-after is capped to it.
const MAX_TIMER_MS = 2 ** 31 - 1

// The signals that are passed on to the command (and that abort the wait
// for the lock before the command starts).
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP']

const HELP = `\
NAME
    dist-lock - run a command while holding a distributed lock in Redis

SYNOPSIS
    dist-lock run [options] <resource> -- <command> [<arg>...]
    dist-lock status [options] <resource>
    dist-lock help | --help | -h
    dist-lock --version

DESCRIPTION
    dist-lock run takes the lock of <resource> in Redis, runs <command>
    with its arguments, releases the lock when the command exits, and exits
    with the command's exit status. While the lock is held, no other process
    using the same Redis server and key prefix can take it: another
    "dist-lock run" of the same resource waits until it is free (or gives
    up, with --wait or --no-wait).

    The lock expires in Redis after its ttl unless extended. dist-lock
    extends it every ttl/3 while the command runs, so the command may run
    for as long as it needs; if dist-lock itself dies, the lock expires
    within one ttl.

    The command runs with dist-lock's standard input, output and error, and
    its environment plus the variables listed under ENVIRONMENT. Options go
    before "--"; everything after "--" is the command and its arguments.

COMMANDS
    run <resource> -- <command> [<arg>...]
        Take the lock of <resource>, run the command, release the lock.

    status <resource>
        Print "locked" or "free" on standard output. Exit status 0 when
        free, 1 when locked, so that "dist-lock status r && ..." runs only
        when r is free. The answer may be out of date by the time it is read.

    help
        Print this help.

OPTIONS
    --redis <url>
        The Redis server, as a URL that the dist-lock library accepts, for
        example redis://[[user]:password@]host[:port][/db] or
        redis+unix:///path/to/socket. Default: see ENVIRONMENT.

    --key-prefix <prefix>
        Prefix of the lock's key in Redis; the key is <prefix><resource>.
        Default: "lock:".

    --ttl <ms>
        (run) Time to live of the lock in Redis, in milliseconds. Default:
        30000. The lock is extended every ttl/3 while the command runs.

    --wait <ms>
        (run) Give up with exit status 75 if the lock is not acquired within
        <ms> milliseconds. Default: wait as long as it takes.

    --no-wait
        (run) Try once; give up with exit status 75 if the lock is held.

    --fair
        (run) Wait in line: waiting processes get the lock in the order in
        which they started waiting.

    --kill-after <ms>
        (run) When the lock is lost, the command gets SIGTERM, and SIGKILL
        if it is still running <ms> milliseconds later. Default: 10000.

    -q, --quiet
        Print no messages on standard error (usage errors are still
        printed).

    -h, --help
        Print this help and exit.

    --version
        Print the version of dist-lock and exit.

    An option's value may also be given as --ttl=5000. Times are whole
    numbers of milliseconds.

LOST LOCK
    The lock is lost when an extension finds its key gone or held by someone
    else, or when Redis cannot be reached to extend it before it expires.
    dist-lock then sends SIGTERM to the command, SIGKILL after --kill-after
    milliseconds if it is still running, and exits with status 76 once the
    command has exited, whatever the command's own status.

SIGNALS
    SIGINT, SIGTERM and SIGHUP received while the command runs are passed on
    to the command (to its process only, not to processes it started);
    SIGINT is not passed on when standard input is a terminal, since
    Ctrl-C there already reaches the command.
    dist-lock waits for the command to exit, releases the lock and exits
    with the command's status. Received while waiting for the lock, they
    stop the wait: dist-lock exits with status 130, 143 or 129 without
    running the command, and leaves nothing locked.
    If the parent process of dist-lock goes away (npx, for one, passes no
    signal on), dist-lock notices within about a second and acts as for
    SIGTERM, sending SIGKILL --kill-after ms later if the command still runs.

EXIT STATUS
    run:
    n        The command's exit status.
    128+n    The command was killed by signal n (143 for SIGTERM, 137 for
             SIGKILL).
    64       Usage error: bad command line or Redis URL.
    69       Redis unavailable, or Redis answered with an error.
    70       Internal error of dist-lock (please report it).
    75       Lock not acquired: held by someone else (--no-wait), or not
             free within --wait milliseconds.
    76       Lock lost while the command ran; the command got SIGTERM.
    126      The command could not be started (not executable, permission
             denied).
    127      Command not found.
    129, 130, 143
             SIGHUP, SIGINT or SIGTERM received while waiting for the lock.

    status:
    0        The resource is free.
    1        The resource is locked.
    64, 69, 70
             As for run.

    A command may itself exit with one of these numbers; the message on
    standard error (unless --quiet) tells the cases apart.

ENVIRONMENT
    DIST_LOCK_REDIS_URL
        The Redis URL, when --redis is not given. A password here is not
        shown in process listings, unlike one in --redis.

    REDIS_URL
        The Redis URL, when neither --redis nor DIST_LOCK_REDIS_URL is
        given. Without any of them: ${DEFAULT_REDIS_URL}.

    Set for the command by run:

    DIST_LOCK_RESOURCE
        The resource name.

    DIST_LOCK_ID
        The lock's id, its value in Redis.

    DIST_LOCK_FENCING_TOKEN
        The lock's fencing token: a decimal integer that increases with
        every grant of the resource. Give it to a store that refuses writes
        with a lower token than it has seen.

EXAMPLES
    A cron job on several hosts that must not overlap (skip when busy):
        dist-lock run --no-wait -q nightly-report -- ./make-report.sh

    A deploy step that waits up to 10 minutes for another deploy:
        dist-lock run --wait 600000 deploy-prod -- ./deploy.sh production

    Only start maintenance when no deploy holds the lock:
        dist-lock status deploy-prod && ./maintenance.sh
`

const USAGE = `\
usage: dist-lock run [options] <resource> -- <command> [<arg>...]
       dist-lock status [options] <resource>
       dist-lock --help`

/** A bad command line: reported with the short usage, exit status 64. */
class UsageError extends Error {}

// ---------------------------------------------------------------------------
// Command line

/**
 * The long options. `value` names the value an option takes (none for a
 * flag); `min` marks a whole number of milliseconds, at least `min`;
 * `runOnly` options are refused by `status`.
 */
const OPTIONS = {
  '--redis': { key: 'redis', value: 'url' },
  '--key-prefix': { key: 'keyPrefix', value: 'prefix' },
  '--ttl': { key: 'ttl', value: 'ms', min: 1, runOnly: true },
  '--wait': { key: 'wait', value: 'ms', min: 0, runOnly: true },
  '--no-wait': { key: 'noWait', runOnly: true },
  '--fair': { key: 'fair', runOnly: true },
  '--kill-after': { key: 'killAfter', value: 'ms', min: 0, runOnly: true },
  '--quiet': { key: 'quiet' },
}
const SHORT_OPTIONS = { '-q': '--quiet', '-h': '--help' }

/** Parses a whole, non-negative number of milliseconds given to `name`. */
function parseMs(name, text, min) {
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(
      `invalid value for ${name}: ${JSON.stringify(text)} (expected a whole number of milliseconds, at least ${min})`,
    )
  }
  return n
}

/**
 * Parses the arguments (without `node` and the script). Returns
 * `{ command: 'help' | 'version' }`, or `{ command: 'run' | 'status',
 * resource, options, argv }` where `argv` is the command to run. Throws
 * UsageError. Options may come before or after the command name and the
 * resource; everything after the first `--` is the command to run.
 */
function parseArgs(args) {
  const dashes = args.indexOf('--')
  const own = dashes === -1 ? args : args.slice(0, dashes)
  const argv = dashes === -1 ? null : args.slice(dashes + 1)
  const positionals = []
  const options = {}
  const given = []

  for (let i = 0; i < own.length; i++) {
    const arg = own[i]
    let name = SHORT_OPTIONS[arg] ?? arg
    if (name === '--help') return { command: 'help' }
    if (name === '--version') return { command: 'version' }
    if (!name.startsWith('-') || name === '-') {
      positionals.push(arg)
      continue
    }
    let inline
    const eq = name.indexOf('=')
    if (name.startsWith('--') && eq !== -1) {
      inline = name.slice(eq + 1)
      name = name.slice(0, eq)
    }
    const spec = OPTIONS[name]
    if (spec === undefined) throw new UsageError(`unknown option ${JSON.stringify(arg)}`)
    given.push(name)
    if (spec.value === undefined) {
      if (inline !== undefined) throw new UsageError(`option ${name} takes no value`)
      options[spec.key] = true
      continue
    }
    let value = inline
    if (value === undefined) {
      if (i + 1 >= own.length) throw new UsageError(`option ${name} needs a value (${name} <${spec.value}>)`)
      value = own[++i]
    }
    options[spec.key] = spec.min !== undefined ? parseMs(name, value, spec.min) : value
  }

  const [command, resource, ...extra] = positionals
  if (command === undefined) throw new UsageError('no command given')
  if (command === 'help') return { command: 'help' }
  if (command !== 'run' && command !== 'status') {
    throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  }
  if (resource === undefined) throw new UsageError(`${command}: missing <resource>`)
  if (resource === '') throw new UsageError(`${command}: the resource name must not be empty`)
  if (extra.length > 0) {
    throw new UsageError(
      command === 'run'
        ? `run: unexpected argument ${JSON.stringify(extra[0])}; put the command to run after "--"`
        : `status: unexpected argument ${JSON.stringify(extra[0])}`,
    )
  }

  if (command === 'status') {
    const runOnly = given.find((name) => OPTIONS[name].runOnly)
    if (runOnly !== undefined) throw new UsageError(`status: option ${runOnly} applies to run only`)
    if (argv !== null) throw new UsageError('status: takes no command (nothing may follow "--")')
  } else {
    if (argv === null || argv.length === 0) {
      throw new UsageError('run: missing the command to run, after "--"')
    }
    if (options.wait !== undefined && options.noWait) {
      throw new UsageError('run: --wait and --no-wait exclude each other')
    }
  }
  return { command, resource, options, argv }
}

/** The Redis URL: --redis, else DIST_LOCK_REDIS_URL, else REDIS_URL, else the default. */
function redisUrl(options) {
  if (options.redis !== undefined) return options.redis
  return process.env.DIST_LOCK_REDIS_URL || process.env.REDIS_URL || DEFAULT_REDIS_URL
}

// ---------------------------------------------------------------------------
// Messages and errors

/** Writes `dist-lock: <message>` on stderr, unless --quiet. */
function makeSay(quiet) {
  return (message) => {
    if (!quiet) process.stderr.write(`dist-lock: ${message}\n`)
  }
}

/** An error's message followed by its code, e.g. `Redis connection failed: ... (ECONNECTION)`. */
function describeError(err) {
  if (err === null || typeof err !== 'object') return String(err)
  return err.code ? `${err.message} (${err.code})` : String(err.message)
}

/** The exit status for an error of the library. */
function exitCodeOf(err) {
  switch (err && err.code) {
    case 'EINVALIDARG':
      return EXIT_USAGE // a bad Redis URL, key prefix, resource name or ttl
    case 'EINTERNAL':
      return EXIT_SOFTWARE
    default:
      return EXIT_UNAVAILABLE // ECONNECTION, EREDIS, ENOTREPLICATED, ECLOSED
  }
}

/** 128 + the number of `signal` (e.g. 143 for SIGTERM), as shells report it. */
function signalStatus(signal) {
  return 128 + (osConstants.signals[signal] ?? 0)
}

/** Creates the lock manager; throws (an EINVALIDARG error) on a bad URL or prefix. */
function openManager(options) {
  const createDistLock = require('../index.js')
  const managerOptions = {}
  if (options.keyPrefix !== undefined) managerOptions.keyPrefix = options.keyPrefix
  return createDistLock(redisUrl(options), managerOptions)
}

// ---------------------------------------------------------------------------
// status

async function status({ resource, options }) {
  const say = makeSay(options.quiet)
  let manager
  try {
    manager = openManager(options)
  } catch (err) {
    say(`cannot use Redis: ${describeError(err)}`)
    return exitCodeOf(err)
  }
  try {
    const locked = await manager.isLocked(resource)
    process.stdout.write(locked ? 'locked\n' : 'free\n')
    return locked ? 1 : 0
  } catch (err) {
    say(`cannot query lock "${resource}": ${describeError(err)}`)
    return exitCodeOf(err)
  } finally {
    await manager.close()
  }
}

// ---------------------------------------------------------------------------
// run

async function run({ resource, options, argv }) {
  const say = makeSay(options.quiet)
  const killAfter = options.killAfter ?? DEFAULT_KILL_AFTER_MS

  // One handler for the forwarded signals, whose effect depends on the phase:
  // while acquiring it aborts the wait; while the command runs it passes the
  // signal on; afterwards (releasing) it is ignored, so that the release is
  // not cut short (it is bounded by the library's connection timeouts).
  let phase = 'acquiring'
  let interrupted = null // the signal that aborted the wait
  let child = null
  const controller = new AbortController()
  const onSignal = (signal) => {
    if (phase === 'acquiring') {
      if (interrupted === null) interrupted = signal
      controller.abort()
    } else if (phase === 'running') {
      // Ctrl-C in a terminal already reaches the whole foreground process
      // group, the command included: passing it on would deliver it twice.
      if (signal === 'SIGINT' && process.stdin.isTTY) return
      child.kill(signal)
    }
  }
  for (const signal of FORWARDED_SIGNALS) process.on(signal, onSignal)
  const stopWatchingParent = watchParent(() => onOrphaned(() => ({ phase, child }), onSignal, killAfter, say))

  let manager
  try {
    manager = openManager(options)
  } catch (err) {
    stopWatchingParent()
    say(`cannot use Redis: ${describeError(err)}`)
    return exitCodeOf(err)
  }

  try {
    // 1. Take the lock.
    const acquireOptions = { autoExtend: true, signal: controller.signal }
    if (options.ttl !== undefined) acquireOptions.ttl = options.ttl
    if (options.fair) acquireOptions.fair = true
    if (options.noWait) acquireOptions.maxRetries = 0
    else if (options.wait !== undefined) acquireOptions.timeout = options.wait
    else acquireOptions.maxRetries = -1 // wait as long as it takes

    let lock
    try {
      lock = await manager.acquire(resource, acquireOptions)
    } catch (err) {
      if (interrupted !== null) {
        say(`${interrupted} received while waiting for lock "${resource}"; the command was not run`)
        return signalStatus(interrupted)
      }
      say(`cannot acquire lock "${resource}": ${describeError(err)}`)
      return exitCodeOf(err)
    }
    if (lock === false) {
      say(
        options.noWait
          ? `lock "${resource}" is held by someone else; not waiting (--no-wait)`
          : `lock "${resource}" not acquired within ${options.wait} ms`,
      )
      return EXIT_NOT_ACQUIRED
    }

    // A signal that came after the grant (the abort came too late to stop it),
    // or a lock lost already: hand the lock back without running the command.
    if (interrupted !== null || lock.lost) {
      phase = 'releasing'
      await releaseLock(lock, resource, say)
      if (interrupted !== null) {
        say(`${interrupted} received while waiting for lock "${resource}"; the command was not run`)
        return signalStatus(interrupted)
      }
      say(`lock "${resource}" lost before the command started (${describeError(lock.signal.reason)})`)
      return EXIT_LOST
    }

    // 2. Run the command, watching the lock.
    const env = {
      ...process.env,
      DIST_LOCK_RESOURCE: resource,
      DIST_LOCK_ID: lock.id,
      DIST_LOCK_FENCING_TOKEN: String(lock.fencingToken),
    }
    const [file, ...args] = argv
    let outcome
    try {
      child = spawn(file, args, { stdio: 'inherit', env })
      phase = 'running'
      outcome = await watchChild(child, lock, resource, killAfter, say)
    } catch (err) {
      // spawn() refused its arguments (e.g. a NUL byte in one).
      outcome = { spawnError: err }
    }

    let exitCode
    if (outcome.spawnError) {
      const err = outcome.spawnError
      const notFound = err.code === 'ENOENT'
      const what = notFound ? 'command not found' : 'cannot execute'
      say(`cannot run ${JSON.stringify(file)}: ${what} (${err.code ?? err.message})`)
      exitCode = notFound ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE
    } else if (outcome.lost) {
      exitCode = EXIT_LOST
    } else if (outcome.signal !== null) {
      exitCode = signalStatus(outcome.signal)
    } else {
      exitCode = outcome.code
    }

    // 3. Release the lock, whatever happened to the command. A failed
    // release is reported but does not change the exit status.
    phase = 'releasing'
    const released = await releaseLock(lock, resource, say)
    if (released === false && !outcome.lost && !outcome.spawnError) {
      say(
        `lock "${resource}" was no longer held when the command ended ` +
          '(it expired or was taken before its loss was noticed)',
      )
    }
    return exitCode
  } finally {
    stopWatchingParent()
    await manager.close()
  }
}

/**
 * The parent of `dist-lock run` is gone (npx, killed, passes no signal on):
 * ends as for SIGTERM (the wait is aborted, or the command gets SIGTERM, then
 * SIGKILL after `killAfter` ms since nobody is left to insist), and the lock
 * is released as usual. `state()` gives the current phase and child.
 */
function onOrphaned(state, onSignal, killAfter, say) {
  // The parent's terminal or pipes may be gone too: a failed write must not
  // end the process before it released the lock.
  process.stdout.on('error', () => {})
  process.stderr.on('error', () => {})
  say('the parent process is gone; ending as for SIGTERM')
  onSignal('SIGTERM')
  const { phase, child } = state()
  if (phase !== 'running') return
  const timer = setTimeout(() => {
    if (child.exitCode === null && child.signalCode === null) {
      say(`the command still runs ${killAfter} ms after SIGTERM; sending SIGKILL`)
      child.kill('SIGKILL')
    }
  }, Math.min(killAfter, MAX_TIMER_MS))
  timer.unref()
}

/**
 * Waits for `child` to exit, sending it SIGTERM (then SIGKILL after
 * `killAfter` ms) if `lock` is lost meanwhile. Resolves with
 * `{ code, signal, lost }`, or `{ spawnError }` if it could not be started.
 */
function watchChild(child, lock, resource, killAfter, say) {
  return new Promise((resolve) => {
    let lost = false
    let killTimer = null
    const onLost = () => {
      lost = true
      // The reason already reads "lock "<key>" is lost: why".
      say(`${describeError(lock.signal.reason)}; sending SIGTERM to the command`)
      child.kill('SIGTERM')
      killTimer = setTimeout(() => {
        say(`the command still runs ${killAfter} ms after SIGTERM; sending SIGKILL`)
        child.kill('SIGKILL')
      }, Math.min(killAfter, MAX_TIMER_MS))
    }
    const done = (outcome) => {
      lock.signal.removeEventListener('abort', onLost)
      if (killTimer !== null) clearTimeout(killTimer)
      resolve(outcome)
    }
    lock.signal.addEventListener('abort', onLost, { once: true })
    // A command that could not be started emits 'error' (and no 'exit');
    // later 'error' events (a failed kill) change nothing.
    child.on('error', (err) => {
      if (child.pid === undefined) done({ spawnError: err, lost })
    })
    child.once('exit', (code, signal) => done({ code, signal, lost }))
  })
}

/**
 * Releases `lock` (owner-checked): resolves true if released, false if it
 * was no longer held, null if the release failed (the lock then expires
 * after its ttl).
 */
async function releaseLock(lock, resource, say) {
  try {
    return await lock.release()
  } catch (err) {
    say(`cannot release lock "${resource}"; it expires after its ttl: ${describeError(err)}`)
    return null
  }
}

// ---------------------------------------------------------------------------
// main

async function main(args) {
  let parsed
  try {
    parsed = parseArgs(args)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`dist-lock: ${err.message}\n${USAGE}\n`)
    return EXIT_USAGE
  }
  switch (parsed.command) {
    case 'help':
      process.stdout.write(HELP)
      return 0
    case 'version':
      process.stdout.write(`${require('../package.json').version}\n`)
      return 0
    case 'status':
      return status(parsed)
    default:
      return run(parsed)
  }
}

// `dist-lock --help | head` closes stdout early: not an error of ours.
process.stdout.on('error', (err) => {
  if (err.code !== 'EPIPE') throw err
})

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err) => {
    process.stderr.write(`dist-lock: internal error: ${err && err.stack ? err.stack : err}\n`)
    process.exitCode = EXIT_SOFTWARE
  },
).finally(() => {
  // Everything is closed by now and the process exits by itself. Should a
  // handle nobody knows of keep it alive, exit anyway a little later.
  setTimeout(() => process.exit(), 2000).unref()
})
