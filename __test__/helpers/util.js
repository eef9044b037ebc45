'use strict'

// Small helpers shared by the test files: lock managers closed together,
// time bounds, unique resource names, child `node` processes, and Redis's
// INFO commandstats.

const { spawn, execFile } = require('node:child_process')
const path = require('node:path')
const { setTimeout: sleep } = require('node:timers/promises')
const distLock = require('../..')

const root = path.join(__dirname, '..', '..')

/**
 * The lock managers of one test file, to close in its `after`:
 * `open(url, options)` makes one, `track(m)` adopts one made otherwise,
 * `close(...ms)` closes some, `closeAll()` those still open. `close()` of a
 * manager takes effect at once; the promises resolve once every close() has.
 */
function managerPool() {
  const open = new Set()
  const track = (m) => {
    open.add(m)
    return m
  }
  const close = (...ms) =>
    Promise.all(
      ms.map((m) => {
        open.delete(m)
        return m.close()
      }),
    )
  return {
    open: (url, options) => track(distLock(url, options)),
    track,
    close,
    closeAll: () => close(...open),
  }
}

/** Resolves with `promise`'s value, or rejects if it does not settle within `ms`. */
function within(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: did not settle within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** A maker of resource names `<prefix>-<label>-<pid>-<n>`, each used by one test only. */
function uniqueNames(prefix) {
  let counter = 0
  return (label) => {
    counter += 1
    return `${prefix}-${label}-${process.pid}-${counter}`
  }
}

/**
 * Spawns `node args...` in the package root and adds it to `children` (the
 * file's set, killed in `after`) while it runs. `exited` resolves to
 * { code, signal, stdout, stderr, ms }, or rejects if the child still runs
 * after `timeoutMs` (it is then killed). `waitFor(text)` resolves with the
 * time (performance.now()) at which stdout contained `text`, and rejects if
 * the child exits first.
 */
function spawnNode(args, { children, timeoutMs = 10_000, env, stdin = 'pipe', what = 'child' } = {}) {
  const t0 = performance.now()
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: [stdin, 'pipe', 'pipe'],
  })
  children.add(child)
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
  const exited = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${what} still running after ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`))
    }, timeoutMs)
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 })
    })
  })
  const waitFor = (text) =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (stdout.includes(text)) {
          child.stdout.off('data', check)
          resolve(performance.now())
        }
      }
      child.stdout.on('data', check)
      check()
      exited.then(
        (r) => reject(new Error(`${what} exited (${r.code}) before printing "${text}"; stderr: ${r.stderr}`)),
        reject,
      )
    })
  return { child, exited, waitFor }
}

/**
 * Runs `node args...` in the package root to its end; resolves (never
 * rejects) { code, signal, stdout, stderr }. Killed with SIGKILL after
 * `timeoutMs`.
 */
function execNode(args, timeoutMs) {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args.map(String),
      { cwd: root, timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => resolve({ code: err ? err.code : 0, signal: err ? err.signal : null, stdout, stderr }),
    )
  })
}

/** Calls per command in the text of INFO commandstats: { evalsha: n, set: n, ... }. */
function commandCalls(info) {
  const out = {}
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]] = Number(m[2])
  return out
}

module.exports = { root, sleep, managerPool, within, uniqueNames, spawnNode, execNode, commandCalls }
