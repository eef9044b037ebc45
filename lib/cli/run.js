'use strict'

// `dist-lock run <resource> -- <command>`: takes the lock of <resource>
// (auto-extended while the command runs), runs the command with the same
// stdio, releases the lock when the command exits, and exits with the
// command's status. If the lock is lost meanwhile, the command gets SIGTERM
// (and SIGKILL after --kill-after ms) and the exit status is 76.

const { spawn } = require('node:child_process')
const { watchParent } = require('../orphan.js')
const {
  DEFAULT_KILL_AFTER_MS,
  EXIT_CANNOT_EXECUTE,
  EXIT_LOST,
  EXIT_NOT_ACQUIRED,
  EXIT_NOT_FOUND,
  MAX_TIMER_MS,
  describeError,
  exitCodeOf,
  makeSay,
  openManager,
  signalStatus,
} = require('./common.js')

// The signals that are passed on to the command (and that abort the wait
// for the lock before the command starts).
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP']

/**
 * Where a run is, for the forwarded signals, whose effect depends on the
 * phase: while acquiring they abort the wait; while the command runs they
 * are passed on; afterwards (releasing) they are ignored, so that the
 * release is not cut short (it is bounded by the library's connection
 * timeouts).
 */
class RunState {
  phase = 'acquiring'
  interrupted = null // the signal that aborted the wait
  child = null
  controller = new AbortController()

  onSignal = (signal) => {
    if (this.phase === 'acquiring') {
      if (this.interrupted === null) this.interrupted = signal
      this.controller.abort()
    } else if (this.phase === 'running') {
      // Ctrl-C in a terminal already reaches the whole foreground process
      // group, the command included: passing it on would deliver it twice.
      if (signal === 'SIGINT' && process.stdin.isTTY) return
      this.child.kill(signal)
    }
  }

  /** Installs the signal handlers and the orphan watch; returns the watch's stop. */
  listen(killAfter, say) {
    for (const signal of FORWARDED_SIGNALS) process.on(signal, this.onSignal)
    return watchParent(() => onOrphaned(this, killAfter, say))
  }
}

async function run({ resource, options, argv }) {
  const say = makeSay(options.quiet)
  const killAfter = options.killAfter ?? DEFAULT_KILL_AFTER_MS
  const state = new RunState()
  const stopWatchingParent = state.listen(killAfter, say)

  let manager
  try {
    manager = openManager(options)
  } catch (err) {
    stopWatchingParent()
    say(`cannot use Redis: ${describeError(err)}`)
    return exitCodeOf(err)
  }
  try {
    const lock = await acquireForRun(manager, resource, options, state, say)
    if (typeof lock === 'number') return lock // the exit status: the command did not run
    const outcome = await spawnAndWatch(lock, resource, argv, state, killAfter, say)
    const exitCode = exitStatus(outcome, argv[0], say)

    // Release the lock, whatever happened to the command. A failed release
    // is reported but does not change the exit status.
    state.phase = 'releasing'
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

/** Takes the lock for the command: the Lock, or the exit status if the command must not run. */
async function acquireForRun(manager, resource, options, state, say) {
  const acquireOptions = { autoExtend: true, signal: state.controller.signal }
  if (options.ttl !== undefined) acquireOptions.ttl = options.ttl
  if (options.fair) acquireOptions.fair = true
  if (options.noWait) acquireOptions.maxRetries = 0
  else if (options.wait !== undefined) acquireOptions.timeout = options.wait
  else acquireOptions.maxRetries = -1 // wait as long as it takes

  const interrupted = () => {
    say(`${state.interrupted} received while waiting for lock "${resource}"; the command was not run`)
    return signalStatus(state.interrupted)
  }
  let lock
  try {
    lock = await manager.acquire(resource, acquireOptions)
  } catch (err) {
    if (state.interrupted !== null) return interrupted()
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
  if (state.interrupted !== null || lock.lost) {
    state.phase = 'releasing'
    await releaseLock(lock, resource, say)
    if (state.interrupted !== null) return interrupted()
    say(`lock "${resource}" lost before the command started (${describeError(lock.signal.reason)})`)
    return EXIT_LOST
  }
  return lock
}

/** Runs the command holding `lock`: `{ code, signal, lost }` or `{ spawnError }`. */
async function spawnAndWatch(lock, resource, argv, state, killAfter, say) {
  const env = {
    ...process.env,
    DIST_LOCK_RESOURCE: resource,
    DIST_LOCK_ID: lock.id,
    DIST_LOCK_FENCING_TOKEN: String(lock.fencingToken),
  }
  const [file, ...args] = argv
  try {
    state.child = spawn(file, args, { stdio: 'inherit', env })
    state.phase = 'running'
    return await watchChild(state.child, lock, killAfter, say)
  } catch (err) {
    // spawn() refused its arguments (e.g. a NUL byte in one).
    return { spawnError: err }
  }
}

/** The exit status of `dist-lock run` for the command's outcome. */
function exitStatus(outcome, file, say) {
  if (outcome.spawnError) {
    const err = outcome.spawnError
    const notFound = err.code === 'ENOENT'
    const what = notFound ? 'command not found' : 'cannot execute'
    say(`cannot run ${JSON.stringify(file)}: ${what} (${err.code ?? err.message})`)
    return notFound ? EXIT_NOT_FOUND : EXIT_CANNOT_EXECUTE
  }
  if (outcome.lost) return EXIT_LOST
  if (outcome.signal !== null) return signalStatus(outcome.signal)
  return outcome.code
}

/**
 * The parent of `dist-lock run` is gone (npx, killed, passes no signal on):
 * ends as for SIGTERM (the wait is aborted, or the command gets SIGTERM, then
 * SIGKILL after `killAfter` ms since nobody is left to insist), and the lock
 * is released as usual.
 */
function onOrphaned(state, killAfter, say) {
  // The parent's terminal or pipes may be gone too: a failed write must not
  // end the process before it released the lock.
  process.stdout.on('error', () => {})
  process.stderr.on('error', () => {})
  say('the parent process is gone; ending as for SIGTERM')
  state.onSignal('SIGTERM')
  const { phase, child } = state
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
function watchChild(child, lock, killAfter, say) {
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

module.exports = { run }
