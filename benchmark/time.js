'use strict'

// Time helpers shared by the parent and the child processes.

const { performance } = require('node:perf_hooks')

/** Milliseconds on a clock that child processes share (wall time, µs precision). */
function now() {
  return performance.timeOrigin + performance.now()
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function sleepUntil(t) {
  return sleep(Math.max(0, t - now()))
}

/**
 * `promise`, or a rejection after `ms` milliseconds. The promise is left to
 * settle in the background (its late rejection is ignored): the caller ends
 * whatever it was doing, typically by closing the library's connections.
 */
function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms)
  })
  promise.catch(() => {})
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

module.exports = { now, sleep, sleepUntil, withTimeout }
