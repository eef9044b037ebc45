// Compiled with `tsc --strict` by __test__/typescript.test.js: the typings
// must accept every documented use and reject misuse (see @ts-expect-error).
import distLock = require('dist-lock')

async function main(url: string): Promise<void> {
  const manager: distLock.DistLock = distLock(url, {
    ttl: 30000,
    retryDelay: 50,
    maxRetries: -1,
    keyPrefix: 'lock:',
    connectTimeout: 1000,
  })
  distLock({ host: '127.0.0.1', port: 6379, db: 1, password: 'x' })

  const controller = new AbortController()
  const waited = await manager.acquire('name', { timeout: 500, signal: controller.signal, fair: true })
  if (waited) await waited.release()
  const lock = await manager.acquire('name')
  if (lock === false) return
  const id: string = lock.id
  const key: string = lock.key
  const attempts: number = lock.acquiredOnAttempt
  const delay: number = lock.acquireDelay
  const extended: true = await lock.extend(10)
  const released: boolean = await lock.release()

  manager.acquire('name', (err, l) => {
    if (err) {
      const code: distLock.ErrorCode = err.code
      void code
      return
    }
    if (l) l.release((e, ok) => void [e, ok])
  })

  try {
    await manager.close()
  } catch (e) {
    if (e instanceof distLock.LockLostError) {
      const c: 'ELOCKLOST' = e.code
      void c
    }
    if (e instanceof distLock.InvalidArgumentError) {
      const t: TypeError = e
      void t
    }
  }

  // @ts-expect-error ttl is a number of milliseconds
  distLock(url, { ttl: '30s' })
  // @ts-expect-error unknown option
  distLock(url, { tll: 5 })
  // @ts-expect-error the first argument is required
  distLock()
  // @ts-expect-error a signal is per call, not per manager
  distLock(url, { signal: controller.signal })
  // @ts-expect-error extend takes seconds as a number
  await lock.extend('10')

  void [id, key, attempts, delay, released, extended]
}

void main
