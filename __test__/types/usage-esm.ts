// The default-import form, compiled with esModuleInterop.
import distLock, { DistLockError } from 'dist-lock'

export async function run(url: string): Promise<boolean> {
  const manager = distLock(url)
  const lock = await manager.acquire('x')
  try {
    return lock !== false && (await lock.release())
  } catch (e) {
    if (e instanceof DistLockError) console.error(e.code)
    throw e
  } finally {
    await manager.close()
  }
}
