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

// lock() never gives false, so its result binds straight to `await using`.
export async function lockScope(url: string, name: string): Promise<{ heldInside: boolean; key: string }> {
  const manager = distLock(url)
  try {
    let heldInside = false
    let key = ''
    {
      await using lock = await manager.lock(name)
      heldInside = await lock.isHeld()
      key = lock.key
    }
    return { heldInside, key }
  } finally {
    await manager.close()
  }
}

// 2.0.x's owner label (a string second argument).
export async function ownerForm(url: string, name: string): Promise<boolean> {
  const manager = distLock(url)
  try {
    const lock = await manager.acquire(name, 'worker-1')
    return lock !== false && (await lock.release())
  } finally {
    await manager.close()
  }
}

// Type checks only: never called.
export async function lockMisuse(url: string): Promise<void> {
  const manager = distLock(url)
  // @ts-expect-error acquire may give false, which `await using` does not take
  await using held = await manager.acquire('x')
  manager.lock('x', { timeout: 10 }, (err, l) => void [err, l?.key])
  // @ts-expect-error the owner label is a string
  await manager.acquire('x', 42)
  void held
}
