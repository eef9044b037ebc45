'use strict'

// Bad input, table-driven: every public function and option fed wrong
// values, plus servers that are not Redis. Each case states how the error
// arrives (the factory and bad callbacks throw synchronously; everything else
// rejects its promise), the expected `code`, and for argument errors the
// name the message must contain. Every case is bounded in time.

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const http = require('node:http')
const net = require('node:net')
const { startRedis, freePort } = require('./helpers/redis-server.js')
const { root, managerPool, within, execNode } = require('./helpers/util.js')
const createDistLock = require('..')
const {
  DistLockError,
  InvalidArgumentError,
  ConnectionError,
  RedisError,
  ClosedError,
  LockLostError,
} = require('..')

const SECRET = 'S3cretPw-42'

const classByCode = {
  EINVALIDARG: InvalidArgumentError,
  ECONNECTION: ConnectionError,
  EREDIS: RedisError,
  ECLOSED: ClosedError,
  ELOCKLOST: LockLostError,
}

// ---------------------------------------------------------------------------
// Environment: a real Redis, one with a password, and servers that are not Redis.

const env = {}
const managers = managerPool()
const servers = []

/** `m`, closed in `after`. */
const track = managers.track

const sockets = new Map() // server -> its open sockets

function listen(server) {
  servers.push(server)
  const open = new Set()
  sockets.set(server, open)
  server.on('connection', (sock) => {
    open.add(sock)
    sock.on('close', () => open.delete(sock))
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(`redis://127.0.0.1:${server.address().port}`))
  })
}

/**
 * A TCP server whose sockets never throw into this process. It reads (and
 * drops) what clients send, so that it sees their FIN and closes its side;
 * `after` destroys what is left.
 */
function tcpServer(onSocket) {
  const srv = net.createServer((sock) => {
    sock.on('error', () => {})
    sock.resume()
    onSocket(sock)
  })
  return srv
}

before(async () => {
  env.redis = await startRedis()
  env.authRedis = await startRedis({ args: ['--requirepass', 'right-password'] })
  env.m = track(createDistLock(env.redis.url, { keyPrefix: 'bad:' }))
  env.lock = await env.m.acquire('held', { ttl: 120_000 })
  assert.ok(env.lock, 'the shared lock was acquired')

  // An HTTP server: every request gets a 400.
  const httpServer = http.createServer((req, res) => {
    res.writeHead(400, { connection: 'close' })
    res.end('bad request')
  })
  httpServer.on('clientError', (err, sock) => sock.end('HTTP/1.1 400 Bad Request\r\n\r\n'))
  httpServer.on('connection', (sock) => sock.on('error', () => {}))
  env.httpUrl = await listen(httpServer)
  // Sends 4 KiB of random bytes as soon as a client connects.
  env.garbageUrl = await listen(tcpServer((sock) => sock.write(crypto.randomBytes(4096))))
  // Streams random bytes forever (until the client goes).
  env.streamUrl = await listen(
    tcpServer((sock) => {
      const timer = setInterval(() => sock.write(crypto.randomBytes(1024)), 5)
      sock.on('close', () => clearInterval(timer))
    }),
  )
  // Accepts and never answers.
  env.silentUrl = await listen(tcpServer(() => {}))
  // Nothing listens there.
  env.deadPort = await freePort()
  env.deadUrl = `redis://127.0.0.1:${env.deadPort}`
})

after(async () => {
  if (env.lock) await env.lock.release().catch(() => {})
  await managers.closeAll()
  for (const s of servers) {
    const closed = new Promise((resolve) => s.close(resolve))
    for (const sock of sockets.get(s) ?? []) sock.destroy()
    s.closeAllConnections?.()
    await closed
  }
  await env.redis?.stop()
  await env.authRedis?.stop()
})

// ---------------------------------------------------------------------------
// Helpers of the cases

// A child whose callbacks all throw: each exception must reach
// 'uncaughtException' exactly once, each callback must be called once, and
// the process must neither crash nor stay alive.
const THROWING_CALLBACKS_CHILD = `
const { execFileSync } = require('node:child_process')
const createDistLock = require(${JSON.stringify(root)})
const [url, port] = process.argv.slice(1)
const uncaught = []
const calls = {}
process.on('uncaughtException', (err) => uncaught.push(err.message))
function cb(name) {
  return () => {
    calls[name] = (calls[name] || 0) + 1
    throw new Error('thrown by ' + name)
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
;(async () => {
  const m = createDistLock(url, { keyPrefix: 'throwing:' })
  m.acquire('granted', cb('acquire'))
  m.acquire('', cb('acquire-error'))
  m.isLocked('x', cb('isLocked'))
  const a = await m.acquire('a')
  a.isHeld(cb('isHeld'))
  a.extend(5, cb('extend'))
  await sleep(200)
  a.release(cb('release'))
  const b = await m.acquire('b', { ttl: 150 })
  b.on('lost', cb('lost-expired'))
  const c = await m.acquire('c', { ttl: 600, autoExtend: true })
  c.on('lost', cb('lost-auto-extend'))
  execFileSync('redis-cli', ['-p', port, 'DEL', c.key])
  await sleep(1500)
  m.close(cb('close'))
  await sleep(300)
  console.log(JSON.stringify({ uncaught, calls }))
})().catch((err) => {
  console.error('child failed', err)
  process.exitCode = 3
})
`
const THROWING_CALLBACKS = [
  'acquire',
  'acquire-error',
  'isLocked',
  'isHeld',
  'extend',
  'release',
  'lost-expired',
  'lost-auto-extend',
  'close',
]

// Holds one watched lock for 300 ms and prints how many
// TimeoutOverflowWarnings (a timer armed beyond 2^31 − 1 ms fires after 1 ms
// instead) came meanwhile.
// In a child, so that the warnings (printed to stderr) stay out of the report.
const OVERFLOW_CHILD = `
const createDistLock = require(${JSON.stringify(root)})
const [url, mode] = process.argv.slice(1)
let overflows = 0
process.on('warning', (w) => { if (w.name === 'TimeoutOverflowWarning') overflows++ })
;(async () => {
  const ttl = mode === 'ttl' ? Number.MAX_SAFE_INTEGER : 10000
  const m = createDistLock(url, { keyPrefix: 'overflow:', ttl })
  const lock = await m.acquire(mode)
  // Watching the lock (its signal, or a 'lost' listener) arms its expiry timer.
  if (mode === 'ttl') lock.signal.addEventListener('abort', () => {})
  if (mode === 'extend') {
    lock.on('lost', () => {})
    await lock.extend(3e6) // about 35 days
  }
  await new Promise((r) => setTimeout(r, 300))
  const released = await lock.release()
  m.close()
  console.log(JSON.stringify({ overflows, released }))
})().catch((err) => {
  console.error('child failed', err)
  process.exitCode = 3
})
`

async function timeoutOverflows(e, mode) {
  const r = await execNode(['-e', OVERFLOW_CHILD, e.redis.url, mode], 15_000)
  assert.equal(r.code, 0, `child exit code ${r.code} (${r.signal})\n${r.stderr.slice(-2000)}`)
  const { overflows, released } = JSON.parse(r.stdout)
  assert.equal(released, true)
  return overflows
}

// ---------------------------------------------------------------------------
// The cases.
//
//   how: 'throws'  the call throws synchronously (the factory, bad callbacks)
//        'rejects' the call returns a promise that rejects
//        'accepts' the call succeeds (a documented boundary value)
//        'custom'  `run` asserts by itself
//   code: the expected err.code; arg: a name the message must contain;
//   secret: a string the message must not contain; ms: the time bound;
//   check(err, env, elapsedMs): more assertions.

const f = (redis, options) => () => track(createDistLock(redis, options))
const opt = (options) => f('redis://127.0.0.1:1', options)
const conn = (fields) => f(fields)

const cases = [
  // --- the factory's first argument -----------------------------------
  { name: 'redis: a number', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f(6379) },
  { name: 'redis: null', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f(null) },
  { name: 'redis: undefined', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f(undefined) },
  { name: 'redis: an empty array (no Redlock master)', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f([]) },
  { name: 'redis: an array with a bad master', how: 'throws', code: 'EINVALIDARG', arg: 'redis[1]', run: f(['redis://127.0.0.1:7001', 'http://x']) },
  { name: 'redis: an array listing a master twice', how: 'throws', code: 'EINVALIDARG', arg: 'redis[1]', run: f(['redis://h:1', 'redis://h:1']) },
  { name: 'redis: an array with a Cluster as a master', how: 'throws', code: 'EINVALIDARG', arg: 'redis[0]', run: f([{ cluster: ['redis://h:1'] }]) },
  { name: 'redis: an array with Sentinels as a master', how: 'throws', code: 'EINVALIDARG', arg: 'redis[0]', run: f([{ sentinels: ['redis://h:1'], masterName: 'm' }]) },
  { name: 'redis: Sentinels with a tls.ca (not supported)', how: 'throws', code: 'EINVALIDARG', arg: 'tls', run: f({ sentinels: ['redis://h:1'], masterName: 'm', tls: { ca: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----' } }) },
  { name: 'redis: a function', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f(() => 'redis://127.0.0.1') },
  { name: 'redis: a Symbol', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f(Symbol('redis')) },
  { name: 'redis: "not a url"', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f('not a url') },
  { name: 'redis: "http://x"', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f('http://x') },
  { name: 'redis: "redis://" (no host)', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f('redis://') },
  { name: 'redis: "redis://host:99999"', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f('redis://host:99999') },
  { name: 'redis: "redis://h/abc" (path not a db)', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f('redis://h/abc') },
  { name: 'redis: "redis://h?db=1" (query string)', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f('redis://h?db=1') },
  { name: 'redis: "rediss://h#bogus" (unknown URL fragment)', how: 'throws', code: 'EINVALIDARG', arg: 'redis', run: f('rediss://h#bogus') },
  {
    name: 'redis: a URL with a password and a bad port: the password is not repeated',
    how: 'throws', code: 'EINVALIDARG', arg: 'redis', secret: SECRET,
    run: f(`redis://user:${SECRET}@host:99999`),
  },
  {
    name: 'redis: a URL with a password and a bad path: the password is not repeated',
    how: 'throws', code: 'EINVALIDARG', arg: 'redis', secret: SECRET,
    run: f(`redis://:${SECRET}@h/abc`),
  },
  {
    name: 'redis: an http URL with a password: the password is not repeated',
    how: 'throws', code: 'EINVALIDARG', arg: 'redis', secret: SECRET,
    run: f(`http://u:${SECRET}@x`),
  },
  {
    name: 'redis: a URL with a password and no host: the password is not repeated',
    how: 'throws', code: 'EINVALIDARG', arg: 'redis', secret: SECRET,
    run: f(`redis://:${SECRET}@`),
  },
  {
    name: 'redis: { url } with a password and a bad path: the password is not repeated',
    how: 'throws', code: 'EINVALIDARG', arg: 'redis.url', secret: SECRET,
    run: conn({ url: `redis://:${SECRET}@h/x` }),
  },
  {
    // The object form refuses port 0 (below); the URL form should too.
    name: 'redis: "redis://127.0.0.1:0" (port 0) [BUG: accepted]',
    how: 'throws', code: 'EINVALIDARG', arg: 'redis',
    run: f('redis://127.0.0.1:0'),
  },

  // --- connection object fields ------------------------------------------
  { name: 'redis.port: 0', how: 'throws', code: 'EINVALIDARG', arg: 'port', run: conn({ port: 0 }) },
  { name: 'redis.port: 70000', how: 'throws', code: 'EINVALIDARG', arg: 'port', run: conn({ port: 70000 }) },
  { name: 'redis.port: 1.5', how: 'throws', code: 'EINVALIDARG', arg: 'port', run: conn({ port: 1.5 }) },
  { name: 'redis.port: "6379"', how: 'throws', code: 'EINVALIDARG', arg: 'port', run: conn({ port: '6379' }) },
  { name: 'redis.db: -1', how: 'throws', code: 'EINVALIDARG', arg: 'db', run: conn({ db: -1 }) },
  { name: 'redis.db: 1.5', how: 'throws', code: 'EINVALIDARG', arg: 'db', run: conn({ db: 1.5 }) },
  { name: 'redis.host: ""', how: 'throws', code: 'EINVALIDARG', arg: 'host', run: conn({ host: '' }) },
  { name: 'redis.path: 5', how: 'throws', code: 'EINVALIDARG', arg: 'path', run: conn({ path: 5 }) },
  { name: 'redis: an unknown field', how: 'throws', code: 'EINVALIDARG', arg: 'hots', run: conn({ hots: '127.0.0.1' }) },
  {
    name: 'redis: url and host together',
    how: 'throws', code: 'EINVALIDARG', arg: 'url',
    run: conn({ url: 'redis://127.0.0.1', host: '127.0.0.1' }),
  },
  { name: 'redis.connectTimeout: 0', how: 'throws', code: 'EINVALIDARG', arg: 'connectTimeout', run: conn({ connectTimeout: 0 }) },
  { name: 'redis.commandTimeout: "5"', how: 'throws', code: 'EINVALIDARG', arg: 'commandTimeout', run: conn({ commandTimeout: '5' }) },

  // --- manager options --------------------------------------------------
  ...[0, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e300, '100', null, true, {}].map((v) => ({
    name: `options.ttl: ${typeof v === 'string' ? JSON.stringify(v) : v === null ? 'null' : typeof v === 'object' ? '{}' : String(v)}`,
    how: 'throws', code: 'EINVALIDARG', arg: 'ttl', run: opt({ ttl: v }),
  })),
  { name: 'options.retryDelay: -1', how: 'throws', code: 'EINVALIDARG', arg: 'retryDelay', run: opt({ retryDelay: -1 }) },
  { name: 'options.retryDelay: 0.5', how: 'throws', code: 'EINVALIDARG', arg: 'retryDelay', run: opt({ retryDelay: 0.5 }) },
  { name: 'options.retryDelay: "50"', how: 'throws', code: 'EINVALIDARG', arg: 'retryDelay', run: opt({ retryDelay: '50' }) },
  { name: 'options.maxRetries: -2', how: 'throws', code: 'EINVALIDARG', arg: 'maxRetries', run: opt({ maxRetries: -2 }) },
  { name: 'options.maxRetries: 1.5', how: 'throws', code: 'EINVALIDARG', arg: 'maxRetries', run: opt({ maxRetries: 1.5 }) },
  { name: 'options.maxRetries: NaN', how: 'throws', code: 'EINVALIDARG', arg: 'maxRetries', run: opt({ maxRetries: NaN }) },
  { name: 'options.keyPrefix: 5', how: 'throws', code: 'EINVALIDARG', arg: 'keyPrefix', run: opt({ keyPrefix: 5 }) },
  { name: 'options.keyPrefix: a lone surrogate', how: 'throws', code: 'EINVALIDARG', arg: 'keyPrefix', run: opt({ keyPrefix: 'p\ud800:' }) },
  { name: 'options.keyPrefix: 70 000 chars', how: 'throws', code: 'EINVALIDARG', arg: 'keyPrefix', run: opt({ keyPrefix: 'p'.repeat(70_000) }) },
  { name: 'options.timeout: -1', how: 'throws', code: 'EINVALIDARG', arg: 'timeout', run: opt({ timeout: -1 }) },
  { name: 'options.timeout: NaN', how: 'throws', code: 'EINVALIDARG', arg: 'timeout', run: opt({ timeout: NaN }) },
  { name: 'options.timeout: "1000"', how: 'throws', code: 'EINVALIDARG', arg: 'timeout', run: opt({ timeout: '1000' }) },
  { name: 'options.fair: "yes"', how: 'throws', code: 'EINVALIDARG', arg: 'fair', run: opt({ fair: 'yes' }) },
  { name: 'options.autoExtend: 1', how: 'throws', code: 'EINVALIDARG', arg: 'autoExtend', run: opt({ autoExtend: 1 }) },
  {
    name: 'options.waitReplicas: count 0',
    how: 'throws', code: 'EINVALIDARG', arg: 'waitReplicas.count',
    run: opt({ waitReplicas: { count: 0, timeoutMs: 100 } }),
  },
  {
    name: 'options.waitReplicas: timeoutMs missing',
    how: 'throws', code: 'EINVALIDARG', arg: 'timeoutMs',
    run: opt({ waitReplicas: { count: 1 } }),
  },
  {
    name: 'options.waitReplicas: timeoutMs 10 000 with the default commandTimeout 5000',
    how: 'throws', code: 'EINVALIDARG', arg: 'waitReplicas.timeoutMs',
    run: opt({ waitReplicas: { count: 1, timeoutMs: 10_000 } }),
  },
  { name: 'options.waitReplicas: null', how: 'throws', code: 'EINVALIDARG', arg: 'waitReplicas', run: opt({ waitReplicas: null }) },
  {
    name: 'options.waitReplicas: an unknown field',
    how: 'throws', code: 'EINVALIDARG', arg: 'replicas',
    run: opt({ waitReplicas: { count: 1, timeoutMs: 100, replicas: 2 } }),
  },
  ...[0, -5, NaN].flatMap((v) => [
    { name: `options.connectTimeout: ${v}`, how: 'throws', code: 'EINVALIDARG', arg: 'connectTimeout', run: opt({ connectTimeout: v }) },
    { name: `options.commandTimeout: ${v}`, how: 'throws', code: 'EINVALIDARG', arg: 'commandTimeout', run: opt({ commandTimeout: v }) },
  ]),
  { name: 'options: an unknown option', how: 'throws', code: 'EINVALIDARG', arg: 'ttL', run: opt({ ttL: 100 }) },
  { name: 'options: a string', how: 'throws', code: 'EINVALIDARG', arg: 'options', run: opt('ttl=100') },
  { name: 'options: null', how: 'throws', code: 'EINVALIDARG', arg: 'options', run: opt(null) },
  { name: 'options: an array', how: 'throws', code: 'EINVALIDARG', arg: 'options', run: opt([]) },
  { name: 'options: a number', how: 'throws', code: 'EINVALIDARG', arg: 'options', run: opt(42) },

  // --- acquire -------------------------------------------------------------
  ...[
    ['""', ''],
    ['null', null],
    ['undefined', undefined],
    ['42', 42],
    ['{}', {}],
    ['a lone surrogate', 'name-\udc00'],
    ['a key > 64 KiB', 'x'.repeat(64 * 1024)],
  ].map(([label, v]) => ({
    name: `acquire(resourceName: ${label})`,
    how: 'rejects', code: 'EINVALIDARG', arg: 'resourceName',
    run: (e) => e.m.acquire(v),
  })),
  // A string is 2.0.x's owner label (lock-method.test.js), of at most 256 characters.
  { name: 'acquire(name, owner: a string of 257 characters)', how: 'rejects', code: 'EINVALIDARG', arg: 'owner', run: (e) => e.m.acquire('a', 'x'.repeat(257)) },
  { name: 'acquire(name, options: 42)', how: 'rejects', code: 'EINVALIDARG', arg: 'options', run: (e) => e.m.acquire('a', 42) },
  { name: 'acquire: an unknown per-call option', how: 'rejects', code: 'EINVALIDARG', arg: 'bogus', run: (e) => e.m.acquire('a', { bogus: 1 }) },
  { name: 'acquire: per-call keyPrefix', how: 'rejects', code: 'EINVALIDARG', arg: 'keyPrefix', run: (e) => e.m.acquire('a', { keyPrefix: 'x:' }) },
  { name: 'acquire: per-call commandTimeout', how: 'rejects', code: 'EINVALIDARG', arg: 'commandTimeout', run: (e) => e.m.acquire('a', { commandTimeout: 10 }) },
  { name: 'acquire: signal {}', how: 'rejects', code: 'EINVALIDARG', arg: 'signal', run: (e) => e.m.acquire('a', { signal: {} }) },
  { name: 'acquire: per-call ttl 0', how: 'rejects', code: 'EINVALIDARG', arg: 'ttl', run: (e) => e.m.acquire('a', { ttl: 0 }) },
  { name: 'acquire: per-call maxRetries NaN', how: 'rejects', code: 'EINVALIDARG', arg: 'maxRetries', run: (e) => e.m.acquire('a', { maxRetries: NaN }) },
  {
    name: 'acquire: per-call waitReplicas.timeoutMs ≥ commandTimeout',
    how: 'rejects', code: 'EINVALIDARG', arg: 'waitReplicas.timeoutMs',
    run: (e) => e.m.acquire('a', { waitReplicas: { count: 1, timeoutMs: 10_000 } }),
  },
  { name: 'acquire: callback "notafunction"', how: 'throws', code: 'EINVALIDARG', arg: 'callback', run: (e) => e.m.acquire('a', 'notafunction', 'notafunction') },
  { name: 'acquire: callback 5', how: 'throws', code: 'EINVALIDARG', arg: 'callback', run: (e) => e.m.acquire('a', {}, 5) },

  // --- lock.extend / release / isHeld --------------------------------------
  ...[0, -1, NaN, Infinity, '10', undefined, null, 1e300, 0.0001].map((v) => ({
    name: `lock.extend(${typeof v === 'string' ? JSON.stringify(v) : String(v)})`,
    how: 'rejects', code: 'EINVALIDARG', arg: 'seconds',
    run: (e) => e.lock.extend(v),
  })),
  { name: 'lock.extend(1, "cb")', how: 'throws', code: 'EINVALIDARG', arg: 'callback', run: (e) => e.lock.extend(1, 'cb') },
  { name: 'lock.release("notafunction")', how: 'throws', code: 'EINVALIDARG', arg: 'callback', run: (e) => e.lock.release('notafunction') },
  { name: 'lock.isHeld(5)', how: 'throws', code: 'EINVALIDARG', arg: 'callback', run: (e) => e.lock.isHeld(5) },

  // --- using, isLocked, close -----------------------------------------------
  { name: 'using(name) without fn', how: 'rejects', code: 'EINVALIDARG', arg: 'fn', run: (e) => e.m.using('u') },
  { name: 'using(name, {}, 5)', how: 'rejects', code: 'EINVALIDARG', arg: 'fn', run: (e) => e.m.using('u', {}, 5) },
  { name: 'using(name, 5, fn)', how: 'rejects', code: 'EINVALIDARG', arg: 'options', run: (e) => e.m.using('u', 5, () => 1) },
  {
    name: 'using("", fn): fn is not called',
    how: 'rejects', code: 'EINVALIDARG', arg: 'resourceName',
    run: (e) => e.m.using('', () => assert.fail('fn called')),
  },
  { name: 'isLocked("")', how: 'rejects', code: 'EINVALIDARG', arg: 'resourceName', run: (e) => e.m.isLocked('') },
  { name: 'isLocked(5)', how: 'rejects', code: 'EINVALIDARG', arg: 'resourceName', run: (e) => e.m.isLocked(5) },
  { name: 'isLocked(name, "cb")', how: 'throws', code: 'EINVALIDARG', arg: 'callback', run: (e) => e.m.isLocked('a', 'cb') },
  { name: 'close("cb")', how: 'throws', code: 'EINVALIDARG', arg: 'callback', run: (e) => e.m.close('cb') },
  {
    name: 'acquire on a closed manager',
    how: 'rejects', code: 'ECLOSED',
    run: (e) => {
      const m = track(createDistLock(e.redis.url))
      m.close()
      return m.acquire('a')
    },
  },

  // --- callbacks that throw ---------------------------------------------
  {
    name: 'callbacks that throw: each exception reaches uncaughtException once (child process)',
    how: 'custom', ms: 30_000,
    run: async (e) => {
      const r = await execNode(['-e', THROWING_CALLBACKS_CHILD, e.redis.url, e.redis.port], 25_000)
      assert.equal(r.signal, null, `child killed by ${r.signal} (hung?)\n${r.stderr}`)
      assert.equal(r.code, 0, `child exit code ${r.code}\n${r.stderr}`)
      const { uncaught, calls } = JSON.parse(r.stdout)
      for (const name of THROWING_CALLBACKS) {
        assert.equal(calls[name], 1, `callback ${name} called ${calls[name]} times`)
        assert.equal(uncaught.filter((m) => m === `thrown by ${name}`).length, 1, `uncaught of ${name}: ${uncaught}`)
      }
      assert.equal(uncaught.length, THROWING_CALLBACKS.length, `uncaught: ${JSON.stringify(uncaught)}`)
    },
  },

  // --- servers that are not Redis, or no server -----------------------------
  { name: 'an HTTP server: acquire', how: 'rejects', code: 'ECONNECTION', run: (e) => track(createDistLock(e.httpUrl)).acquire('a') },
  { name: 'an HTTP server: isLocked', how: 'rejects', code: 'ECONNECTION', run: (e) => track(createDistLock(e.httpUrl)).isLocked('a') },
  { name: 'random bytes on connect: acquire', how: 'rejects', code: 'ECONNECTION', run: (e) => track(createDistLock(e.garbageUrl)).acquire('a') },
  {
    name: 'random bytes on connect: using (fn not called)',
    how: 'rejects', code: 'ECONNECTION',
    run: (e) => track(createDistLock(e.garbageUrl)).using('a', () => assert.fail('fn called')),
  },
  { name: 'an endless stream of random bytes: acquire', how: 'rejects', code: 'ECONNECTION', run: (e) => track(createDistLock(e.streamUrl)).acquire('a') },
  {
    name: 'a server that never answers: acquire within connectTimeout + commandTimeout bounds',
    how: 'rejects', code: 'ECONNECTION',
    run: (e) => track(createDistLock(e.silentUrl, { connectTimeout: 500, commandTimeout: 1000 })).acquire('a'),
  },
  {
    name: 'nothing listens: acquire fails quickly',
    how: 'rejects', code: 'ECONNECTION', ms: 3000,
    run: (e) => track(createDistLock(e.deadUrl)).acquire('a'),
  },
  {
    name: 'nothing listens, URL with a password: the password is not repeated',
    how: 'rejects', code: 'ECONNECTION', ms: 3000, secret: SECRET,
    run: (e) => track(createDistLock(`redis://user:${SECRET}@127.0.0.1:${e.deadPort}/0`)).isLocked('a'),
  },
  {
    name: 'a wrong password: ECONNECTION, the password is not repeated',
    how: 'rejects', code: 'ECONNECTION', secret: SECRET,
    run: (e) => track(createDistLock({ port: e.authRedis.port, password: SECRET })).acquire('a'),
  },
  {
    name: 'after the non-Redis servers the process and the real server still work',
    how: 'custom',
    run: async (e) => {
      const lock = await e.m.acquire('still-works', { maxRetries: 0 })
      assert.ok(lock)
      assert.equal(await lock.release(), true)
    },
  },

  // --- Redis answers with an error --------------------------------------
  { name: 'a db number out of range (redis://.../99999)', how: 'rejects', code: 'EREDIS', run: (e) => track(createDistLock(`${e.redis.url}/99999`)).acquire('a') },
  {
    name: 'a fencing counter that is not an integer: EREDIS, and no lock key left behind [BUG: key left]',
    how: 'rejects', code: 'EREDIS',
    run: (e) => {
      // A prefix of its own: its counter is shared by all its resources.
      e.redis.cli('SET', '{badcount:}:fencing', 'not-a-number')
      return track(createDistLock(e.redis.url, { keyPrefix: 'badcount:' })).acquire('fence-string')
    },
    check: (err, e) => {
      assert.equal(e.redis.cli('EXISTS', 'badcount:fence-string'), '0', 'the failed acquire left the lock key set (for its whole ttl)')
    },
  },
  {
    name: 'a fencing counter of the wrong type: EREDIS, and no lock key left behind [BUG: key left]',
    how: 'rejects', code: 'EREDIS',
    run: (e) => {
      e.redis.cli('HSET', '{badtype:}:fencing', 'f', 'v')
      return track(createDistLock(e.redis.url, { keyPrefix: 'badtype:' })).acquire('fence-hash')
    },
    check: (err, e) => {
      assert.equal(e.redis.cli('EXISTS', 'badtype:fence-hash'), '0', 'the failed acquire left the lock key set (for its whole ttl)')
    },
  },

  // --- every error is a DistLockError ---------------------------------------
  {
    // An inherited property (Object.prototype polluted by some other code)
    // reaches the native option reader, which throws; index.js must still
    // report a DistLockError (or ignore the inherited value), never a bare string.
    name: 'Object.prototype.fair = "yes": acquire resolves or rejects with a DistLockError [BUG: rejects with a bare string]',
    how: 'custom',
    run: async (e) => {
      let outcome
      Object.prototype.fair = 'yes' // eslint-disable-line no-extend-native
      try {
        outcome = await e.m.acquire('polluted', { ttl: 5000, maxRetries: 0 }).then(
          (lock) => ({ lock }),
          (err) => ({ err }),
        )
      } finally {
        delete Object.prototype.fair
      }
      if (outcome.lock) await outcome.lock.release()
      if ('err' in outcome) {
        assert.ok(outcome.err instanceof DistLockError, `rejected with ${typeof outcome.err} ${JSON.stringify(String(outcome.err))}`)
      }
    },
  },

  // --- documented boundaries that must be accepted ---------------------------
  {
    name: 'ttl: Number.MAX_SAFE_INTEGER is accepted, and watching lock.signal arms no overflowing timer [BUG: 1 ms timer loop]',
    how: 'custom',
    run: async (e) => {
      const overflows = await timeoutOverflows(e, 'ttl')
      assert.equal(overflows, 0, `${overflows} TimeoutOverflowWarnings in 300 ms: the expiry timer re-arms every 1 ms`)
    },
  },
  {
    name: 'lock.extend(3e6) (about 35 days) with a \'lost\' listener arms no overflowing timer [BUG: 1 ms timer loop]',
    how: 'custom',
    run: async (e) => {
      const overflows = await timeoutOverflows(e, 'extend')
      assert.equal(overflows, 0, `${overflows} TimeoutOverflowWarnings in 300 ms: the expiry timer re-arms every 1 ms`)
    },
  },
]

// ---------------------------------------------------------------------------

function checkError(err, c) {
  assert.ok(err instanceof Error, `not an Error: ${err}`)
  assert.equal(err.code, c.code, `code of ${err.name}: ${err.message}`)
  assert.ok(err instanceof DistLockError, `${err.name} is not a DistLockError`)
  assert.ok(err instanceof classByCode[c.code], `${err.name} is not a ${classByCode[c.code].name}`)
  if (c.code === 'EINVALIDARG') assert.ok(err instanceof TypeError)
  if (c.arg !== undefined) {
    assert.ok(err.message.includes(c.arg), `message ${JSON.stringify(err.message)} does not name ${JSON.stringify(c.arg)}`)
  }
  if (c.secret !== undefined) {
    assert.ok(!err.message.includes(c.secret), `message ${JSON.stringify(err.message)} repeats the password`)
    assert.ok(!String(err.stack).includes(c.secret), 'the stack repeats the password')
  }
}

async function runCase(c) {
  const ms = c.ms ?? 10_000
  const t0 = performance.now()
  if (c.how === 'custom') {
    await within(Promise.resolve().then(() => c.run(env)), ms, c.name)
    return
  }
  if (c.how === 'throws') {
    let value
    assert.throws(
      () => {
        value = c.run(env)
      },
      (err) => {
        checkError(err, c)
        return true
      },
      `expected a synchronous ${c.code}, got ${value === undefined ? 'undefined' : value?.constructor?.name}`,
    )
    return
  }
  // 'rejects': the call itself must not throw, and must return a promise.
  let promise
  try {
    promise = c.run(env)
  } catch (err) {
    assert.fail(`threw synchronously instead of rejecting: ${err && err.message}`)
  }
  assert.equal(typeof promise?.then, 'function', 'did not return a promise')
  let outcome
  try {
    outcome = { value: await within(promise, ms, c.name) }
  } catch (err) {
    if (/did not settle within/.test(err.message) && !(err instanceof DistLockError)) throw err
    outcome = { err }
  }
  const elapsed = performance.now() - t0
  assert.ok(outcome.err, `resolved with ${outcome.value} instead of rejecting with ${c.code}`)
  checkError(outcome.err, c)
  assert.ok(elapsed < ms, `took ${elapsed.toFixed(0)} ms`)
  if (c.check) await c.check(outcome.err, env, elapsed)
}

test('bad input: every public function and option, table-driven', async (t) => {
  assert.ok(cases.length >= 60, `only ${cases.length} cases`)
  const names = new Set()
  for (const c of cases) {
    assert.ok(!names.has(c.name), `duplicate case name ${c.name}`)
    names.add(c.name)
    await t.test(c.name, { timeout: (c.ms ?? 10_000) + 5_000 }, () => runCase(c))
  }
  const count = (how) => cases.filter((c) => c.how === how).length
  t.diagnostic(
    `${cases.length} cases: ${count('throws')} synchronous throws, ${count('rejects')} rejections, ${count('custom')} custom`,
  )
})
