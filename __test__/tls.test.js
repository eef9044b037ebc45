'use strict'

// TLS connections (rediss://): a redis-server started with --tls-port and
// certificates made here with openssl: a CA, a server certificate for
// 127.0.0.1/localhost, and a client certificate for mutual TLS.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFileSync } = require('node:child_process')
const Redis = require('ioredis')
const { createClient } = require('redis')
const { RedisServer, freePort } = require('./helpers/redis-server.js')
const { managerPool, within, uniqueNames } = require('./helpers/util.js')
const distLock = require('..')
const { ConnectionError, InvalidArgumentError } = distLock

function hasOpenssl() {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-tls-'))
process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
const file = (name) => path.join(dir, name)
const read = (name) => fs.readFileSync(file(name), 'utf8')

function openssl(...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' })
}

/** A CA (twice: the real one and a stranger), a server and a client certificate. */
function makeCertificates() {
  for (const ca of ['ca', 'other-ca']) {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.crt`,
      '-days', '2', '-subj', `/CN=dist-lock test ${ca}`)
  }
  fs.writeFileSync(file('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  fs.writeFileSync(file('client.ext'), 'extendedKeyUsage=clientAuth\n')
  for (const [name, ext] of [['server', 'server.ext'], ['client', 'client.ext']]) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`,
      '-subj', `/CN=${name === 'server' ? 'localhost' : 'dist-lock client'}`)
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '2', '-extfile', ext)
  }
}

/** A redis-server with a plain port (for the test's own look) and a TLS port. */
async function startTlsRedis(authClients) {
  const tlsPort = await freePort()
  const server = new RedisServer({
    args: [
      '--tls-port', String(tlsPort),
      '--tls-cert-file', file('server.crt'),
      '--tls-key-file', file('server.key'),
      '--tls-ca-cert-file', file('ca.crt'),
      '--tls-auth-clients', authClients,
    ],
  })
  await server.start()
  server.tlsPort = tlsPort
  server.tlsUrl = `rediss://127.0.0.1:${tlsPort}`
  return server
}

describe('TLS connections', { skip: !hasOpenssl() && 'openssl is not installed' }, () => {
  let server // TLS, client certificates optional
  let mutual // TLS, client certificates required
  const plain = new Map() // server → an ioredis client on its plain port
  const managers = managerPool()
  const name = uniqueNames('tls')

  before(async () => {
    makeCertificates()
    server = await startTlsRedis('optional')
    mutual = await startTlsRedis('yes')
    for (const s of [server, mutual]) plain.set(s, new Redis(s.port, '127.0.0.1'))
  })

  after(async () => {
    await managers.closeAll()
    for (const client of plain.values()) client.disconnect()
    await server?.stop()
    await mutual?.stop()
  })

  /** Acquires, checks the key through the plain port, releases. */
  async function roundTrip(manager, label, on = server) {
    const resource = name(label)
    const lock = await within(manager.acquire(resource), 15_000, `acquire over TLS (${label})`)
    assert.ok(lock, 'granted')
    assert.equal(await plain.get(on).get(lock.key), lock.id, 'the lock is in Redis, stored as in 1.0')
    assert.equal(await within(lock.release(), 15_000, 'release over TLS'), true)
    assert.equal(await plain.get(on).exists(lock.key), 0)
  }

  test('a rediss:// URL with the CA in tls.ca: acquire, wake-up and release work', async () => {
    const m = managers.open({ url: server.tlsUrl, tls: { ca: read('ca.crt') } }, { retryDelay: 10_000 })
    await roundTrip(m, 'url-ca')
    // The waiter is woken by the release message over the TLS pub/sub connection.
    const resource = name('wake')
    const held = await m.acquire(resource)
    const waiting = m.acquire(resource)
    setTimeout(() => held.release(), 100)
    const next = await within(waiting, 5_000, 'woken over TLS, not after retryDelay (10 s)')
    assert.ok(next)
    await next.release()
  })

  test('host/port/tls options: tls.ca as a Buffer, and as an array', async () => {
    await roundTrip(
      managers.open({ host: '127.0.0.1', port: server.tlsPort, tls: { ca: fs.readFileSync(file('ca.crt')) } }),
      'parts-buffer',
    )
    await roundTrip(
      managers.open({ host: 'localhost', port: server.tlsPort, tls: { ca: [read('other-ca.crt'), read('ca.crt')] } }),
      'parts-array',
    )
  })

  test('a certificate from an unknown CA is refused with ECONNECTION, in bounded time', async () => {
    const m = managers.open({ url: server.tlsUrl, tls: { ca: read('other-ca.crt') } }, { connectTimeout: 1000, commandTimeout: 1000 })
    const started = Date.now()
    await assert.rejects(within(m.acquire(name('unknown-ca')), 15_000, 'refused'), (err) => {
      assert.ok(err instanceof ConnectionError, `expected ConnectionError, got ${err}`)
      assert.equal(err.code, 'ECONNECTION')
      return true
    })
    assert.ok(Date.now() - started < 15_000)
    // The system's trust store does not know the test CA either.
    const sys = managers.open(server.tlsUrl, { connectTimeout: 1000, commandTimeout: 1000 })
    await assert.rejects(within(sys.acquire(name('system-roots')), 15_000, 'refused'), { code: 'ECONNECTION' })
  })

  test('rejectUnauthorized: false accepts any certificate', async () => {
    await roundTrip(managers.open({ url: server.tlsUrl, tls: { rejectUnauthorized: false } }), 'insecure')
  })

  test('mutual TLS: without a client certificate the server refuses; with tls.cert and tls.key it works', async () => {
    const url = mutual.tlsUrl
    const without = managers.open({ url, tls: { ca: read('ca.crt') } }, { connectTimeout: 1000, commandTimeout: 1000 })
    await assert.rejects(within(without.acquire(name('no-cert')), 15_000, 'refused'), { code: 'ECONNECTION' })
    const m = managers.open({ url, tls: { ca: read('ca.crt'), cert: read('client.crt'), key: read('client.key') } })
    const lock = await within(m.acquire(name('mtls')), 15_000, 'acquire with a client certificate')
    assert.ok(lock)
    assert.equal(await lock.release(), true)
  })

  test('the TLS options of an ioredis client and of a node-redis client are used', async () => {
    const io = new Redis({
      host: '127.0.0.1', port: mutual.tlsPort, lazyConnect: true,
      tls: { ca: read('ca.crt'), cert: read('client.crt'), key: read('client.key'), servername: 'localhost' },
    })
    await roundTrip(managers.open(io), 'ioredis', mutual)
    const nr = createClient({
      socket: { host: '127.0.0.1', port: mutual.tlsPort, tls: true, ca: read('ca.crt'), cert: read('client.crt'), key: read('client.key') },
    })
    await roundTrip(managers.open(nr), 'node-redis', mutual)
    // node-redis with a rediss:// URL and no CA: the system's trust store, which refuses.
    const byUrl = createClient({ url: server.tlsUrl })
    const m = managers.open(byUrl, { connectTimeout: 1000, commandTimeout: 1000 })
    await assert.rejects(within(m.acquire(name('nr-url')), 15_000, 'refused'), { code: 'ECONNECTION' })
  })

  test('bad TLS options are refused at once with EINVALIDARG, naming the option', () => {
    const cases = [
      [{ url: server.tlsUrl, tls: { cert: read('client.crt') } }, /tls\.cert.*tls\.key/],
      [{ url: server.tlsUrl, tls: { key: read('client.key') } }, /tls\.cert.*tls\.key/],
      [{ url: server.tlsUrl, tls: 'yes' }, /option "tls" must be true or an object/],
      [{ url: server.tlsUrl, tls: { ca: 42 } }, /"tls\.ca" must be a PEM string/],
      [{ url: server.tlsUrl, tls: { ca: [] } }, /"tls\.ca" must not be empty/],
      [{ url: server.tlsUrl, tls: { servername: 'x' } }, /unknown option "servername" in "tls"/],
      [{ url: server.tlsUrl, tls: { rejectUnauthorized: 'no' } }, /"tls\.rejectUnauthorized" must be a boolean/],
      [{ url: server.url, tls: true }, /needs a rediss:\/\/ URL/],
      [{ url: server.tlsUrl, tls: false }, /"tls" is false but "url" is rediss/],
      [{ path: '/tmp/redis.sock', tls: true }, /Unix socket/],
      [{ url: server.tlsUrl, tls: { ca: 'ca.crt' } }, /"tls\.ca" holds no PEM certificate/],
      [{ url: server.tlsUrl, tls: { cert: read('client.crt'), key: read('client.crt') } }, /"tls\.key" holds no PEM private key/],
    ]
    for (const [connection, message] of cases) {
      assert.throws(() => distLock(connection), (err) => {
        assert.ok(err instanceof InvalidArgumentError, `${JSON.stringify(connection.tls)}: ${err}`)
        assert.equal(err.code, 'EINVALIDARG')
        assert.match(err.message, message)
        return true
      })
    }
  })
})
