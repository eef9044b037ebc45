// A CommonJS module using dist-lock, compiled with "module": "node16" by
// __test__/typescript.test.js: 'dist-lock' resolves through the "require"
// condition of package.json's "exports" (types: index.d.ts).
import distLock = require('dist-lock')
import { LockLostError, type DistLockOptions } from 'dist-lock'

export async function run(url: string): Promise<{ token: number; released: boolean }> {
  const options: DistLockOptions = { ttl: 10000, keyPrefix: 'ts-cjs:' }
  const manager: distLock.DistLock = distLock(url, options)
  try {
    const lock = await manager.acquire('resource', { maxRetries: 0 })
    if (lock === false) throw new Error('not acquired')
    return { token: lock.fencingToken, released: await lock.release() }
  } catch (e) {
    if (e instanceof LockLostError) {
      const code: 'ELOCKLOST' = e.code
      console.error(code)
    }
    throw e
  } finally {
    await manager.close()
  }
}

// Type checks only: never called.
export function misuse(): void {
  const code: distLock.ErrorCode = 'ENATIVE'
  // @ts-expect-error unknown option
  distLock('redis://127.0.0.1', { tll: 5 })
  // @ts-expect-error not an error code
  const unknown: distLock.ErrorCode = 'ENOPE'
  void [code, unknown]
}
