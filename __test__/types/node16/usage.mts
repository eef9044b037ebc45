// An ES module using dist-lock, compiled with "module": "node16" by
// __test__/typescript.test.js in a project whose node_modules/dist-lock links
// to this package: 'dist-lock' resolves through the "import" condition of
// package.json's "exports" (types: index.d.mts). The compiled file runs too.
import distLock, {
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
  NotAcquiredError,
  AbortError,
  type AcquireOptions,
  type Callback,
  type CommonOptions,
  type DistLockOptions,
  type EffectiveOptions,
  type ErrorCode,
  type RedisConnection,
  type WaitReplicasOptions,
} from 'dist-lock'

export interface Outcome {
  token: number
  released: boolean
  sameFactory: boolean
}

export async function run(url: string): Promise<Outcome> {
  const connection: RedisConnection = url
  const options: DistLockOptions = { ttl: 10000, keyPrefix: 'ts-esm:' }
  const manager: DistLock = distLock(connection, options)
  try {
    const acquireOptions: AcquireOptions = { maxRetries: 0 }
    const lock: Lock | false = await manager.acquire('resource', acquireOptions)
    if (lock === false) throw new Error('not acquired')
    const token: number = lock.fencingToken
    const released: boolean = await lock.release()
    return { token, released, sameFactory: createDistLock === distLock }
  } catch (e) {
    if (e instanceof DistLockError) {
      const code: ErrorCode = e.code
      console.error(code)
    }
    throw e
  } finally {
    await manager.close()
  }
}

// Type checks only: never called.
export function misuse(manager: DistLock): void {
  const effective: EffectiveOptions = manager.options
  const common: CommonOptions = { fair: true, autoExtend: true }
  const replicas: WaitReplicasOptions = { count: 1, timeoutMs: 100 }
  const callback: Callback<boolean> = (err, held) => void [err, held]
  manager.isLocked('x', callback)

  const native: ErrorCode = 'ENATIVE'
  const errors: DistLockError[] = [
    new ConnectionError('c'),
    new RedisError('r'),
    new LockLostError('l'),
    new ClosedError('c'),
    new NotReplicatedError('n'),
    new NotAcquiredError('n'),
    new AbortError('a'),
  ]
  const invalid: TypeError = new InvalidArgumentError('i')
  const lost: 'ELOCKLOST' = new LockLostError('l').code
  const locked: Promise<Lock> = manager.lock('x', { timeout: 10 })

  // @ts-expect-error the first argument is required
  distLock()
  // @ts-expect-error ttl is a number of milliseconds
  distLock('redis://127.0.0.1', { ttl: '30s' })
  // @ts-expect-error not an error code
  const unknown: ErrorCode = 'ENOPE'
  // @ts-expect-error Lock has no public constructor
  new Lock()

  void [effective, common, replicas, native, errors, invalid, lost, unknown, locked]
}
