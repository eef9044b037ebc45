'use strict'

// The callback form of the API over its promise form.

const { invalid, describe } = require('./errors.js')

function checkCallback(callback, name = 'callback') {
  if (callback !== undefined && typeof callback !== 'function') {
    throw invalid(`argument "${name}" must be a function or undefined, got ${describe(callback)}`)
  }
}

/**
 * Returns `promise`, or, given a callback, calls it once with (err, value) on
 * a later tick, so an exception it throws reaches `uncaughtException` like
 * that of any Node callback, and is never caught and reported again.
 */
function settle(promise, callback) {
  if (callback === undefined) return promise
  promise.then(
    (value) => process.nextTick(callback, null, value),
    (err) => process.nextTick(callback, err),
  )
  return undefined
}

module.exports = { checkCallback, settle }
