// Compiled with `tsc --strict` by __test__/typescript.test.js: the typings of
// TLS options, the manager's events and stats().
import distLock = require('dist-lock')

export function observe(url: string): distLock.Stats {
  const m = distLock({ url, tls: { ca: 'pem', cert: Buffer.from('pem'), key: ['pem'], rejectUnauthorized: false } })
  distLock({ host: 'h', port: 6380, tls: true })
  // @ts-expect-error servername is not a dist-lock TLS option
  distLock({ url, tls: { servername: 'x' } })
  m.on('acquired', (e) => {
    const wait: number = e.waitMs
    const attempts: number = e.attempts
    const token: number | null = e.fencingToken
    void [wait, attempts, token, e.resource, e.key, e.id]
  })
  m.on('released', (e) => void (e.released satisfies boolean))
  m.on('extended', (e) => void (e.auto satisfies boolean))
  m.on('notAcquired', (e) => void (e.waitMs satisfies number))
  m.on('lost', (e) => void (e.error.code satisfies 'ELOCKLOST'))
  m.on('error', (err, context) => void [err.code satisfies distLock.ErrorCode, context.op])
  m.on('warning', (w) => {
    const policy: string | null = w.policy
    void [w.code satisfies 'EEVICTION', w.server, w.maxmemory, w.message, policy]
  })
  distLock(url, { evictionPolicy: 'refuse' }).options.evictionPolicy satisfies distLock.EvictionPolicy
  // @ts-expect-error not an eviction policy
  distLock(url, { evictionPolicy: 'never' })
  void m.acquire('x').catch((err: unknown) => err instanceof distLock.EvictionError && err.code === 'EEVICTION')
  // @ts-expect-error not an event of the manager
  m.on('granted', () => {})
  const s = m.stats()
  const p99: number | null = s.waitMs.p99
  void p99
  return s
}

// Scale-out modes: Redlock, Cluster, Sentinel.
export function modes(): void {
  const quorum = distLock(['redis://a:6379', { host: 'b', port: 6379 }, 'redis://c:6379'], { driftFactor: 0.01 })
  void quorum.acquire('x').then((lock) => {
    if (lock) {
      // @ts-expect-error the token is null (Redlock)
      const token: number = lock.fencingToken
      void token
    }
  })
  const nullToken: null = null as distLock.Lock<null>['fencingToken']
  void nullToken
  const cluster = distLock({ cluster: ['redis://127.0.0.1:7000', { port: 7001 }], password: 'p', tls: true })
  void cluster.acquire('x').then((lock) => {
    const token: number | undefined = lock ? lock.fencingToken : undefined
    void token
  })
  distLock({ sentinels: [{ host: '127.0.0.1', port: 26379 }], masterName: 'mymaster', db: 1, sentinelPassword: 's' })
  // @ts-expect-error masterName is required with sentinels
  distLock({ sentinels: ['redis://127.0.0.1:26379'] })
}
