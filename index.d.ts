// Public typings of dist-lock, hand-written over the generated binding.d.ts.
//
//   import distLock = require('dist-lock')          // CommonJS
//   import distLock from 'dist-lock'                // with esModuleInterop

import { EventEmitter } from 'node:events'

/** Options of a Redis connection given as an object. */
interface RedisConnectionOptions {
  /** A Redis URL; give either this or the parts below. */
  url?: string
  /** Default `"127.0.0.1"`. */
  host?: string
  /** Default `6379`. */
  port?: number
  /** A Unix socket path, instead of host and port. */
  path?: string
  username?: string
  password?: string
  /** Database number, default `0`. */
  db?: number
  /** Bound on one attempt to connect, in ms. Default 2000. */
  connectTimeout?: number
  /** Bound on the wait for one command's answer, in ms. Default 5000. */
  commandTimeout?: number
  /**
   * TLS: `true` (the system's trust store) or the options below, named as in
   * Node's `tls.connect`. With `url`, the URL must be `rediss://`.
   */
  tls?: true | false | TlsOptions
}

/** PEM text: a string, a Buffer, or an array of them. */
type Pem = string | Uint8Array | ReadonlyArray<string | Uint8Array>

/** TLS options of a `rediss://` connection. */
interface TlsOptions {
  /** Certificate authorities to trust instead of the system's (PEM). */
  ca?: Pem
  /** Client certificate chain for mutual TLS (PEM); needs `key`. */
  cert?: Pem
  /** Private key of `cert` (PEM). */
  key?: Pem
  /** `false` accepts any server certificate: for tests only. Default `true`. */
  rejectUnauthorized?: boolean
}

/** A node of a Cluster or a Sentinel: a URL, or a host and port. */
type NodeAddress = string | { host?: string; port?: number }

/** A Redis Cluster: `{ cluster: [seed nodes] }`. */
interface RedisClusterOptions {
  /** Seed nodes (at least one); the others are discovered. */
  cluster: NodeAddress[]
  /** ACL user name of every node (unless a seed URL has its own). */
  username?: string
  password?: string
  connectTimeout?: number
  commandTimeout?: number
  tls?: true | false | TlsOptions
}

/** A master managed by Redis Sentinel: `{ sentinels: [...], masterName }`. */
interface RedisSentinelOptions {
  /** The Sentinels (at least one). */
  sentinels: NodeAddress[]
  /** The name the Sentinels monitor the master under. */
  masterName: string
  /** ACL user name, password and database of the master. */
  username?: string
  password?: string
  db?: number
  /** Credentials of the Sentinels themselves. */
  sentinelUsername?: string
  sentinelPassword?: string
  connectTimeout?: number
  commandTimeout?: number
  tls?: true | false | TlsOptions
}

/**
 * A node-redis (v4/v5) or ioredis client: only its connection options are
 * read. node-redis 4 types `options` as possibly undefined (it is set at
 * run time), so a client with `sendCommand` may leave it out.
 */
type RedisClientLike =
  | {
      options: object
      sendCommand?: (...args: any[]) => unknown
      call?: (...args: any[]) => unknown
    }
  | {
      options?: object
      sendCommand: (...args: any[]) => unknown
    }

declare namespace createDistLock {
  /** One Redis server: a URL (`redis://[user:pass@]host:port/db`), an options object, or a client whose options are read. */
  export type RedisServer = string | RedisConnectionOptions | RedisClientLike

  /**
   * Where dist-lock connects: one server; an array of independent masters
   * (Redlock quorum); `{ cluster: [...] }` (Redis Cluster); or
   * `{ sentinels: [...], masterName }` (Redis Sentinel).
   */
  export type RedisConnection =
    | RedisServer
    | readonly RedisServer[]
    | RedisClusterOptions
    | RedisSentinelOptions

  /** After a grant, wait for `count` replicas to acknowledge it within `timeoutMs`, else release it and fail with `NotReplicatedError`. */
  export interface WaitReplicasOptions {
    count: number
    timeoutMs: number
  }

  /** Options of one `acquire` (they override the manager's for that call). */
  export interface AcquireOptions extends CommonOptions {
    /** Aborts the acquisition: it rejects with `AbortError`, leaving nothing in Redis. */
    signal?: AbortSignal
  }

  /** Options that apply to acquires, per manager or per call. */
  export interface CommonOptions {
    /** Milliseconds after which the lock releases itself. Default 30000. */
    ttl?: number
    /** Milliseconds between two acquisition attempts. Default 50. */
    retryDelay?: number
    /**
     * -1 = wait until granted (default). N: give up (resolve `false`) at the
     * first refusal once N × retryDelay ms have passed; 0 = try once.
     */
    maxRetries?: number
    /** Give up (resolve `false`) after this many milliseconds of waiting. */
    timeout?: number
    /**
     * FIFO across processes (a queue in Redis): each process's first waiter
     * queues in Redis, so processes take turns, and within a process waiters
     * are served in arrival order. Default false.
     */
    fair?: boolean
    /** Keep the lock alive (extend it at ttl/3) until released. Default false. */
    autoExtend?: boolean
    /** Replicas that must acknowledge a grant. Default: none. */
    waitReplicas?: WaitReplicasOptions
    /** Clock-drift allowance of a lock's validity, a fraction of its ttl (plus 2 ms). Default 0.01. */
    driftFactor?: number
  }

  export interface DistLockOptions extends CommonOptions {
    /** Prefix of lock keys in Redis. Default `"lock:"`; may be empty. */
    keyPrefix?: string
    /**
     * What to do when a server that holds locks may evict keys (a
     * `maxmemory-policy` other than `noeviction` with `maxmemory` set), read
     * from `INFO memory` once per connection: `'warn'` (default) emits a
     * `'warning'` event and one process warning, `'refuse'` rejects acquires
     * there with `EvictionError`, `'ignore'` does not check.
     */
    evictionPolicy?: EvictionPolicy
    /** Bound on one attempt to connect, in ms. Default 2000. */
    connectTimeout?: number
    /** Bound on the wait for one command's answer, in ms. Default 5000. */
    commandTimeout?: number
  }

  export type EvictionPolicy = 'warn' | 'refuse' | 'ignore'

  /** A `'warning'` event: a server may evict lock keys, or could not be checked. */
  export interface EvictionWarning {
    code: 'EEVICTION'
    /** `host:port` of the server. */
    server: string
    /** Its `maxmemory-policy`, or null if it could not be read. */
    policy: string | null
    /** Its `maxmemory` in bytes, or null if it could not be read. */
    maxmemory: number | null
    /** What can happen and how to fix it. */
    message: string
  }

  /** The effective lock options, defaults filled in. */
  export interface EffectiveOptions {
    ttl: number
    retryDelay: number
    maxRetries: number
    keyPrefix: string
    autoExtend: boolean
    fair: boolean
    driftFactor: number
    evictionPolicy: EvictionPolicy
    timeout?: number
    waitReplicas?: WaitReplicasOptions
  }

  export type Callback<T> = (err: DistLockError | null, result?: T) => void

  /**
   * A granted lock. Emits `'lost'` (with a `LockLostError`) at most once if
   * the lock is found lost before it was released.
   */
  /**
   * `Token` is `number` (fencing tokens), or `null` for the locks of a
   * Redlock manager (no honest token there).
   */
  export class Lock<Token extends number | null = number> extends EventEmitter {
    private constructor()
    /** The unique ID of the lock (UUID v4): the value of its key in Redis. */
    readonly id: string
    /** The key of the lock in Redis (`keyPrefix + resourceName`). */
    readonly key: string
    /** The resource name given to `acquire`. */
    readonly resource: string
    /** The number of attempts made to acquire the lock. */
    readonly acquiredOnAttempt: number
    /** Milliseconds from the `acquire` call to the grant. */
    readonly acquireDelay: number
    /**
     * Strictly increases per resource, across all processes, with each grant.
     * Pass it to storage that rejects writes with an older token. A number,
     * exact up to `Number.MAX_SAFE_INTEGER`.
     */
    /** `null` in Redlock mode (no honest token there). */
    readonly fencingToken: Token
    /** Whether the lock extends itself until released. */
    readonly autoExtend: boolean
    /** Until when the lock is surely held, in ms on the `performance.now()` clock. */
    readonly validUntil: number
    /** Whether the lock was found lost. */
    readonly lost: boolean
    /** Whether `release()` was called (and did not fail). */
    readonly released: boolean
    /** Aborts, with a `LockLostError` as reason, when the lock is found lost. */
    readonly signal: AbortSignal
    /** Not released, not lost, and within its validity. */
    isValid(): boolean
    /** Asks Redis whether this lock is still held by its owner. */
    isHeld(): Promise<boolean>
    isHeld(callback: Callback<boolean>): void
    on(event: 'lost', listener: (err: LockLostError) => void): this
    once(event: 'lost', listener: (err: LockLostError) => void): this
    off(event: 'lost', listener: (err: LockLostError) => void): this
    /** Releases the lock at the end of an `await using` scope. */
    [Symbol.asyncDispose](): Promise<void>
    /**
     * Releases the lock if it is still ours: `true` if released, `false` if it
     * had expired or belongs to someone else (left untouched). Never rejects
     * unhandled when not awaited.
     */
    release(): Promise<boolean>
    release(callback: Callback<boolean>): void
    /**
     * Resets the lock's TTL to `seconds` seconds (ms precision). Rejects with
     * `LockLostError` if the lock is no longer held.
     */
    /** Resolves `true` (as 1.0's truthy result); a lost lock fails with `LockLostError`. */
    extend(seconds: number): Promise<true>
    extend(seconds: number, callback: (err: DistLockError | null, extended?: true) => void): void
  }

  /** Who an event is about. */
  export interface LockEventBase {
    /** The resource name given to `acquire`. */
    resource: string
    /** The lock's key in Redis. */
    key: string
    /** The lock's id. */
    id: string
  }
  export interface AcquiredEvent extends LockEventBase {
    /** Milliseconds from the acquire call to the grant (`lock.acquireDelay`). */
    waitMs: number
    /** SET attempts made (`lock.acquiredOnAttempt`). */
    attempts: number
    fencingToken: number | null
  }
  export interface NotAcquiredEvent {
    resource: string
    /** Milliseconds waited before maxRetries or timeout ran out. */
    waitMs: number
  }
  export interface ReleasedEvent extends LockEventBase {
    /** Milliseconds from the grant to the release. */
    heldMs: number
    /** `false` if the lock had expired or belonged to someone else by then. */
    released: boolean
  }
  export interface ExtendedEvent extends LockEventBase {
    /** The new TTL in ms (manual `extend()` only). */
    ttl?: number
    /** Whether the extension was automatic (`autoExtend`). */
    auto: boolean
  }
  export interface LostEvent extends LockEventBase {
    error: LockLostError
  }
  /** Context of an `'error'` event: the failed operation, and the lock if any. */
  export interface ErrorEventContext extends Partial<LockEventBase> {
    op: 'acquire' | 'release' | 'extend' | 'autoExtend' | 'isLocked'
    error: DistLockError
  }
  /** What `stats()` gives. */
  export interface Stats {
    /** Granted acquires. */
    acquired: number
    /** Granted acquires that needed more than one attempt. */
    contended: number
    /** Acquires that gave `false` (maxRetries or timeout ran out). */
    notAcquired: number
    /** Acquires aborted by their signal. */
    aborted: number
    /** Completed releases. */
    released: number
    /** Successful `extend()` calls. */
    extended: number
    /** Successful automatic extensions. */
    autoExtended: number
    /** Locks found lost. */
    lost: number
    /** Calls or automatic extensions that failed with ECONNECTION or EREDIS. */
    redisErrors: number
    /** Calls in flight now. */
    pending: number
    /** Wait of the most recent grants (up to 1024), in ms; `null` before the first. */
    waitMs: { samples: number; p50: number | null; p99: number | null; max: number | null }
  }
  export interface DistLockEvents {
    acquired: [event: AcquiredEvent]
    notAcquired: [event: NotAcquiredEvent]
    released: [event: ReleasedEvent]
    extended: [event: ExtendedEvent]
    lost: [event: LostEvent]
    error: [error: DistLockError, context: ErrorEventContext]
    warning: [warning: EvictionWarning]
  }

  /**
   * A lock manager bound to one Redis server. An EventEmitter of
   * `'acquired'`, `'notAcquired'`, `'released'`, `'extended'`, `'lost'`,
   * `'error'` and `'warning'`; an `'error'` nobody listens to is not thrown.
   */
  export class DistLock<Token extends number | null = number> extends EventEmitter<DistLockEvents> {
    private constructor()
    readonly options: EffectiveOptions
    /** Counters since creation, calls in flight, and wait percentiles. */
    stats(): Stats
    /** Whether `close()` was called. */
    readonly closed: boolean
    /**
     * Acquires the lock of `resourceName`. Gives the `Lock`, or `false` when
     * `maxRetries` or `timeout` ran out; rejects with `AbortError` when
     * `options.signal` aborts.
     */
    acquire(resourceName: string, options?: AcquireOptions): Promise<Lock<Token> | false>
    acquire(resourceName: string, callback: Callback<Lock<Token> | false>): void
    acquire(resourceName: string, options: AcquireOptions | undefined, callback: Callback<Lock<Token> | false>): void
    /**
     * 2.0.x's form: `owner` is a label (at most 256 characters), accepted
     * for compatibility and not stored yet.
     */
    acquire(resourceName: string, owner: string): Promise<Lock<Token> | false>
    acquire(resourceName: string, owner: string, callback: Callback<Lock<Token> | false>): void
    /**
     * `acquire`, but never `false`: rejects with `NotAcquiredError` when
     * `maxRetries` or `timeout` ran out. So `await using lock = await
     * distLock.lock(name)` compiles.
     */
    lock(resourceName: string, options?: AcquireOptions): Promise<Lock<Token>>
    lock(resourceName: string, callback: Callback<Lock<Token>>): void
    lock(resourceName: string, options: AcquireOptions | undefined, callback: Callback<Lock<Token>>): void
    lock(resourceName: string, owner: string): Promise<Lock<Token>>
    lock(resourceName: string, owner: string, callback: Callback<Lock<Token>>): void
    /**
     * Runs `fn` holding the lock (auto-extended), releases it in every case,
     * and returns `fn`'s result or rethrows its error. Rejects with
     * `NotAcquiredError` if limited attempts ran out.
     */
    using<T>(resourceName: string, fn: (lock: Lock<Token>) => T | Promise<T>): Promise<T>
    using<T>(resourceName: string, options: AcquireOptions, fn: (lock: Lock<Token>) => T | Promise<T>): Promise<T>
    /** Whether anyone holds the lock of `resourceName`. */
    isLocked(resourceName: string): Promise<boolean>
    isLocked(resourceName: string, callback: Callback<boolean>): void
    /** Ends the connection; pending and later calls fail with `ClosedError`. */
    close(): Promise<void>
    close(callback: (err: DistLockError | null) => void): void
  }

  export type ErrorCode =
    | 'EINVALIDARG'
    | 'ECONNECTION'
    | 'EREDIS'
    | 'ELOCKLOST'
    | 'ECLOSED'
    | 'ENOTREPLICATED'
    | 'EEVICTION'
    | 'ENOTACQUIRED'
    | 'ABORT_ERR'
    | 'EINTERNAL'
    | 'ENATIVE'

  /** Base of every dist-lock error (also matches `InvalidArgumentError`). */
  export class DistLockError extends Error {
    constructor(message: string, code: ErrorCode, options?: { cause?: unknown })
    readonly code: ErrorCode
  }
  /** A bad argument or option. It is also a `TypeError`. */
  export class InvalidArgumentError extends TypeError {
    constructor(message: string, options?: { cause?: unknown })
    static readonly code: 'EINVALIDARG'
    readonly code: 'EINVALIDARG'
  }
  /** Redis unreachable, connection dropped, or no answer in time. */
  export class ConnectionError extends DistLockError {
    constructor(message: string, options?: { cause?: unknown })
    static readonly code: 'ECONNECTION'
    readonly code: 'ECONNECTION'
  }
  /** Redis answered with an error (out of memory, read-only replica, ...). */
  export class RedisError extends DistLockError {
    constructor(message: string, options?: { cause?: unknown })
    static readonly code: 'EREDIS'
    readonly code: 'EREDIS'
  }
  /** The lock is no longer held by its owner. */
  export class LockLostError extends DistLockError {
    constructor(message: string, options?: { cause?: unknown })
    static readonly code: 'ELOCKLOST'
    readonly code: 'ELOCKLOST'
  }
  /** The lock manager was closed. */
  export class ClosedError extends DistLockError {
    constructor(message: string, options?: { cause?: unknown })
    static readonly code: 'ECLOSED'
    readonly code: 'ECLOSED'
  }

  /** Fewer replicas than `waitReplicas.count` acknowledged a grant; the lock was released. */
  export class NotReplicatedError extends DistLockError {
    constructor(message: string, options?: { cause?: unknown })
    static readonly code: 'ENOTREPLICATED'
    readonly code: 'ENOTREPLICATED'
  }
  /** A server that may evict lock keys refused the lock (`evictionPolicy: 'refuse'`). */
  export class EvictionError extends DistLockError {
    constructor(message: string, options?: { cause?: unknown })
    static readonly code: 'EEVICTION'
    readonly code: 'EEVICTION'
  }
  /** `using()` or `lock()` could not acquire the lock: its attempts ran out. */
  export class NotAcquiredError extends DistLockError {
    constructor(message: string, options?: { cause?: unknown })
    static readonly code: 'ENOTACQUIRED'
    readonly code: 'ENOTACQUIRED'
  }

  /** An acquire aborted by its `signal`; `cause` is the signal's reason. */
  export class AbortError extends DistLockError {
    constructor(message: string, options?: { cause?: unknown })
    static readonly code: 'ABORT_ERR'
    readonly code: 'ABORT_ERR'
  }

  /** The factory again, for `import { createDistLock } from 'dist-lock'`. */
  export const createDistLock: typeof import('./index')
  const _default: typeof import('./index')
  export { _default as default }
}

/** Creates a lock manager: `require('dist-lock')(redis, options)`. */
declare function createDistLock(
  redis: readonly createDistLock.RedisServer[],
  options?: createDistLock.DistLockOptions,
): createDistLock.DistLock<null>
declare function createDistLock(
  redis: createDistLock.RedisConnection,
  options?: createDistLock.DistLockOptions,
): createDistLock.DistLock

export = createDistLock
