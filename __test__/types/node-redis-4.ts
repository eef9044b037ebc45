// A node-redis 4 client (devDependency "redis4", an alias of redis@4) given
// to the factory: node-redis 4 types its `options` as possibly undefined,
// which the typings must accept under --strict.
import { createClient } from 'redis4'
import distLock from 'dist-lock'

export async function viaRedis4(url: string): Promise<boolean> {
  const client = createClient({ url })
  const manager = distLock(client)
  try {
    const lock = await manager.lock('ts-redis4')
    return await lock.release()
  } finally {
    await manager.close()
  }
}

// Type checks only: never called.
export function bareClient(): void {
  const manager = distLock(createClient(), { ttl: 1000 })
  void manager
}
