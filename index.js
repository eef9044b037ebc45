'use strict'

// The public API of dist-lock: the 1.0 factory `require('dist-lock')(redis,
// options)`, the DistLock and Lock classes and the error classes. The code
// is in lib/ (one file per concern): manager.js (DistLock), lock.js (Lock),
// core.js (requests to the native core of binding.js), options.js and
// connection.js (arguments), errors.js, observe.js.

const { DistLock } = require('./lib/manager.js')
const { Lock } = require('./lib/lock.js')
const { ERROR_CLASSES } = require('./lib/errors.js')

/** `require('dist-lock')(redis, options)`: a new lock manager. */
function createDistLock(redis, options) {
  return new DistLock(redis, options)
}

module.exports = createDistLock
module.exports.createDistLock = createDistLock
module.exports.default = createDistLock
module.exports.DistLock = DistLock
module.exports.Lock = Lock
Object.assign(module.exports, ERROR_CLASSES)
