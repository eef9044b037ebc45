'use strict'

// What the parts of the dist-lock command share: exit codes, defaults,
// messages, and the lock manager they open.

const { constants: osConstants } = require('node:os')

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

/** The Redis URL: --redis, else DIST_LOCK_REDIS_URL, else REDIS_URL, else the default. */
function redisUrl(options) {
  if (options.redis !== undefined) return options.redis
  return process.env.DIST_LOCK_REDIS_URL || process.env.REDIS_URL || DEFAULT_REDIS_URL
}

/**
 * Creates the lock manager; throws (an EINVALIDARG error) on a bad URL or
 * prefix. The library is loaded only here, so that `--help`, `--version` and
 * usage errors work even where the native addon cannot load.
 */
function openManager(options) {
  const createDistLock = require('../../index.js')
  const managerOptions = {}
  if (options.keyPrefix !== undefined) managerOptions.keyPrefix = options.keyPrefix
  return createDistLock(redisUrl(options), managerOptions)
}

module.exports = {
  DEFAULT_KILL_AFTER_MS,
  DEFAULT_REDIS_URL,
  EXIT_CANNOT_EXECUTE,
  EXIT_LOST,
  EXIT_NOT_ACQUIRED,
  EXIT_NOT_FOUND,
  EXIT_SOFTWARE,
  EXIT_UNAVAILABLE,
  EXIT_USAGE,
  MAX_TIMER_MS,
  describeError,
  exitCodeOf,
  makeSay,
  openManager,
  signalStatus,
}
