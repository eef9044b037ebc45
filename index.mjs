// The ES module entry of dist-lock (`import distLock from 'dist-lock'`): the
// CommonJS module (index.js) re-exported, so both entries share one module
// instance and the same classes (`instanceof` works across them).
//
// index.js is loaded with require() rather than `import ... from
// './index.js'`: when it throws (no native binary for this platform, code
// ENATIVE), Node 20 reports an error thrown by a CommonJS module that an ES
// module imports as uncaught even when `await import('dist-lock')` catches it.

import { createRequire } from 'node:module'

const distLock = createRequire(import.meta.url)('./index.js')

export default distLock

export const {
  createDistLock,
  DistLock,
  Lock,
  DistLockError,
  InvalidArgumentError,
  ConnectionError,
  RedisError,
  LockLostError,
  ClosedError,
  NotReplicatedError,
  EvictionError,
  NotAcquiredError,
  AbortError,
} = distLock
