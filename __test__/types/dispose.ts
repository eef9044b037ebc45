// `await using` (TypeScript 5.2+): the lock is released at the end of the scope.
import distLock from 'dist-lock'

export async function holdInScope(url: string, name: string): Promise<{ heldInside: boolean; key: string }> {
  const manager = distLock(url)
  try {
    let heldInside = false
    let key = ''
    {
      const acquired = await manager.acquire(name)
      if (acquired === false) throw new Error('not acquired')
      await using lock = acquired
      heldInside = await lock.isHeld()
      key = lock.key
    }
    return { heldInside, key }
  } finally {
    await manager.close()
  }
}

export async function usingScope(url: string, name: string): Promise<number> {
  const manager = distLock(url)
  try {
    return await manager.using(name, async (lock) => {
      const signal: AbortSignal = lock.signal
      void signal
      return lock.fencingToken
    })
  } finally {
    await manager.close()
  }
}
