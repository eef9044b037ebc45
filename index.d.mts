// Typings of the ES module entry (index.mjs): the default export is the
// factory, the classes are named exports, and so are the option and result
// types of index.d.ts.
//
//   import distLock, { LockLostError, type Lock } from 'dist-lock'

import distLock from './index.js'

export default distLock

export {
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
} from './index.js'

export type {
  RedisConnection,
  RedisServer,
  WaitReplicasOptions,
  AcquireOptions,
  CommonOptions,
  DistLockOptions,
  EffectiveOptions,
  EvictionPolicy,
  EvictionWarning,
  Callback,
  ErrorCode,
  LockEventBase,
  AcquiredEvent,
  NotAcquiredEvent,
  ReleasedEvent,
  ExtendedEvent,
  LostEvent,
  ErrorEventContext,
  DistLockEvents,
  Stats,
} from './index.js'
