'use strict'

// Notices that this process was orphaned: its parent process is gone. npx
// (and some supervisors) do not pass SIGTERM, SIGHUP or SIGINT on to the
// process they started, so killing npx would otherwise leave `dist-lock run`
// and its command running, with the lock auto-extended for ever.
//
// Node reads `process.ppid` once, at startup, so the parent is checked
// directly: on Linux the live parent pid is read from /proc (it changes at
// once when the parent exits); everywhere, the original parent must still
// exist (`kill(pid, 0)`).

const fs = require('node:fs')

/** How often the parent is checked, in ms. */
const CHECK_INTERVAL_MS = 250

/** The current parent pid from /proc/self/stat (Linux), or undefined. */
function liveParentPid() {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8')
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ppid = Number(fields[1])
    return Number.isInteger(ppid) ? ppid : undefined
  } catch {
    return undefined
  }
}

/** Whether a process `pid` exists (EPERM: it does, but is not ours to signal). */
function exists(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

/**
 * Calls `onOrphaned()` once, within about `intervalMs`, after the parent of
 * this process went away. Does nothing when the parent is already init (or
 * unknown) at the start: there is no parent to lose then. The timer never
 * keeps the process alive. Returns a function that stops the watch.
 */
function watchParent(onOrphaned, intervalMs = CHECK_INTERVAL_MS) {
  const parent = process.ppid
  if (!Number.isInteger(parent) || parent <= 1) return () => {}
  const timer = setInterval(() => {
    const live = liveParentPid()
    if ((live !== undefined && live !== parent) || !exists(parent)) {
      clearInterval(timer)
      onOrphaned()
    }
  }, intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}

module.exports = { watchParent, liveParentPid, CHECK_INTERVAL_MS }
