'use strict'

// The factory: the forms of its first argument (URL, options object,
// node-redis and ioredis clients), the lock options and their validation,
// and the exported error classes.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const Redis = require('ioredis')
const { createClient } = require('redis')
const { startRedis, freePort } = require('./helpers/redis-server.js')
const { managerPool } = require('./helpers/util.js')
const createDistLock = require('..')
const {
  DistLockError,
  InvalidArgumentError,
  ConnectionError,
  RedisError,
  LockLostError,
  ClosedError,
} = require('..')

let server // an open server
let authServer // a server with --requirepass secret
const managers = managerPool()
const ioClients = []

/** `m`, closed in `after`. */
const track = managers.track

/** Asserts `fn` throws synchronously an InvalidArgumentError naming `name`. */
function throwsInvalid(fn, name) {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${err}`)
    assert.ok(err instanceof TypeError)
    assert.ok(err instanceof DistLockError)
    assert.equal(err.code, 'EINVALIDARG')
    assert.ok(
      err.message.includes(name),
      `message ${JSON.stringify(err.message)} does not name ${JSON.stringify(name)}`,
    )
    return true
  })
}

/** Acquires `name` with `dl`, checks the value in db `db` of `srv`, releases. */
async function acquireInDb(dl, name, db, srv = server, auth = []) {
  const lock = await dl.acquire(name)
  assert.ok(lock, 'acquired')
  assert.equal(srv.cli(...auth, '-n', db, 'GET', lock.key), lock.id)
  for (const other of [0, 1, 2, 3, 5]) {
    if (other !== db) assert.equal(srv.cli(...auth, '-n', other, 'EXISTS', lock.key), '0', `db ${other}`)
  }
  assert.equal(await lock.release(), true)
  assert.equal(srv.cli(...auth, '-n', db, 'EXISTS', lock.key), '0')
  return lock
}

const AUTH = ['-a', 'secret', '--no-auth-warning']

before(async () => {
  server = await startRedis()
  authServer = await startRedis({ args: ['--requirepass', 'secret'] })
})

after(async () => {
  await managers.closeAll()
  for (const c of ioClients) c.disconnect()
  await server.stop()
  await authServer.stop()
})

describe('the factory', () => {
  test('require("dist-lock") is a function that returns a lock manager', () => {
    assert.equal(typeof createDistLock, 'function')
    const dl = track(createDistLock(server.url))
    assert.equal(typeof dl.acquire, 'function')
    assert.equal(typeof dl.close, 'function')
    assert.ok(dl instanceof createDistLock.DistLock)
  })

  test('creating a manager does not connect (a down server is fine until used)', async () => {
    const port = await freePort()
    const dl = track(createDistLock(`redis://127.0.0.1:${port}`, { connectTimeout: 500, commandTimeout: 500 }))
    await assert.rejects(dl.acquire('x'), (err) => err instanceof ConnectionError && err.code === 'ECONNECTION')
  })
})

describe('first argument: URL string', () => {
  test('redis://127.0.0.1:PORT uses db 0', async () => {
    const dl = track(createDistLock(`redis://127.0.0.1:${server.port}`, { keyPrefix: 'url0:' }))
    await acquireInDb(dl, 'r', 0)
  })

  test('redis://127.0.0.1:PORT/3 selects db 3', async () => {
    const dl = track(createDistLock(`redis://127.0.0.1:${server.port}/3`, { keyPrefix: 'url3:' }))
    await acquireInDb(dl, 'r', 3)
  })

  test('redis://:secret@127.0.0.1:PORT authenticates', async () => {
    const dl = track(createDistLock(`redis://:secret@127.0.0.1:${authServer.port}`, { keyPrefix: 'auth:' }))
    await acquireInDb(dl, 'url', 0, authServer, AUTH)
  })

  test('redis://:secret@127.0.0.1:PORT/2 authenticates and selects db 2', async () => {
    const dl = track(createDistLock(`redis://:secret@127.0.0.1:${authServer.port}/2`, { keyPrefix: 'auth:' }))
    await acquireInDb(dl, 'url2', 2, authServer, AUTH)
  })

  test('a wrong password fails with ConnectionError (ECONNECTION)', async () => {
    const dl = track(createDistLock(`redis://:wrong@127.0.0.1:${authServer.port}`, { keyPrefix: 'auth:' }))
    await assert.rejects(dl.acquire('x'), (err) => {
      assert.ok(err instanceof ConnectionError, `got ${err}`)
      assert.ok(err instanceof DistLockError)
      assert.equal(err.code, 'ECONNECTION')
      assert.ok(!err.message.includes('wrong'), 'the password is not echoed')
      return true
    })
    assert.equal(authServer.cli(...AUTH, 'EXISTS', 'auth:x'), '0')
  })
})

describe('first argument: options object', () => {
  test('{ host, port, db }', async () => {
    const dl = track(createDistLock({ host: '127.0.0.1', port: server.port, db: 3 }, { keyPrefix: 'obj:' }))
    await acquireInDb(dl, 'hostportdb', 3)
  })

  test('{ port } alone: host 127.0.0.1, db 0', async () => {
    const dl = track(createDistLock({ port: server.port }, { keyPrefix: 'obj:' }))
    await acquireInDb(dl, 'port', 0)
  })

  test('{ url }', async () => {
    const dl = track(createDistLock({ url: `redis://127.0.0.1:${server.port}/5` }, { keyPrefix: 'obj:' }))
    await acquireInDb(dl, 'url', 5)
  })

  test('{ port, password } on a password-protected server', async () => {
    const dl = track(createDistLock({ port: authServer.port, password: 'secret' }, { keyPrefix: 'obj:' }))
    await acquireInDb(dl, 'pw', 0, authServer, AUTH)
  })

  test('{ port, password } with a wrong password: ECONNECTION', async () => {
    const dl = track(createDistLock({ port: authServer.port, password: 'nope' }, { keyPrefix: 'obj:' }))
    await assert.rejects(dl.acquire('x'), (err) => err instanceof ConnectionError && err.code === 'ECONNECTION')
  })

  test('a password with URL-special characters', async () => {
    const special = 'p@ss:w/rd?#%'
    const srv = await startRedis({ args: ['--requirepass', special] })
    try {
      const dl = track(createDistLock({ port: srv.port, password: special }, { keyPrefix: 'obj:' }))
      const lock = await dl.acquire('special')
      assert.ok(lock)
      assert.equal(await lock.release(), true)
      await dl.close()
    } finally {
      await srv.stop()
    }
  })

  test('connectTimeout and commandTimeout are accepted in the connection object', async () => {
    const dl = track(
      createDistLock({ port: server.port, connectTimeout: 1000, commandTimeout: 2000 }, { keyPrefix: 'obj:' }),
    )
    await acquireInDb(dl, 'timeouts', 0)
    const dl2 = track(
      createDistLock({ url: server.url, connectTimeout: 1000, commandTimeout: 2000 }, { keyPrefix: 'obj:' }),
    )
    await acquireInDb(dl2, 'timeouts-url', 0)
  })

  test('unknown or mistyped connection options are refused', () => {
    throwsInvalid(() => createDistLock({ prot: 6379 }), 'prot')
    throwsInvalid(() => createDistLock({ port: '6379' }), 'port')
    throwsInvalid(() => createDistLock({ port: 70000 }), 'port')
    throwsInvalid(() => createDistLock({ db: -1, port: server.port }), 'db')
    throwsInvalid(() => createDistLock({ url: server.url, port: server.port }), 'url')
  })
})

describe('first argument: clients', () => {
  test('a node-redis v5 client (not connected) created with { url }', async () => {
    const client = createClient({ url: `redis://127.0.0.1:${server.port}/3` })
    const dl = track(createDistLock(client, { keyPrefix: 'nr:' }))
    await acquireInDb(dl, 'url', 3)
    assert.equal(client.isOpen, false, 'dist-lock does not open the client')
  })

  test('a node-redis v5 client created with { socket: { host, port }, database: 2 }', async () => {
    const client = createClient({ socket: { host: '127.0.0.1', port: server.port }, database: 2 })
    const dl = track(createDistLock(client, { keyPrefix: 'nr:' }))
    await acquireInDb(dl, 'socket', 2)
  })

  test('a node-redis v5 client with a password in its URL', async () => {
    const client = createClient({ url: `redis://:secret@127.0.0.1:${authServer.port}/1` })
    const dl = track(createDistLock(client, { keyPrefix: 'nr:' }))
    await acquireInDb(dl, 'pw', 1, authServer, AUTH)
  })

  test('an ioredis client (lazyConnect, db 1): the key goes to db 1', async () => {
    const client = new Redis({ port: server.port, lazyConnect: true, db: 1 })
    ioClients.push(client)
    const dl = track(createDistLock(client, { keyPrefix: 'io:' }))
    const lock = await dl.acquire('r')
    // Read it back through an ioredis client on db 1.
    const reader = new Redis({ port: server.port, host: '127.0.0.1', db: 1 })
    ioClients.push(reader)
    assert.equal(await reader.get('io:r'), lock.id)
    assert.equal(server.cli('-n', 0, 'EXISTS', 'io:r'), '0')
    assert.equal(await lock.release(), true)
    assert.equal(await reader.exists('io:r'), 0)
    assert.equal(client.status, 'wait', 'dist-lock does not connect the client')
    client.disconnect()
    reader.disconnect()
  })

  test('an ioredis client with a password', async () => {
    const client = new Redis({ port: authServer.port, lazyConnect: true, password: 'secret' })
    ioClients.push(client)
    const dl = track(createDistLock(client, { keyPrefix: 'io:' }))
    await acquireInDb(dl, 'pw', 0, authServer, AUTH)
    client.disconnect()
  })
})

describe('first argument: anything else is refused', () => {
  const bad = {
    'a number': 6379,
    null: null,
    undefined: undefined,
    'an empty array (no Redlock master)': [],
    'a function': () => {},
    "the string 'not a url'": 'not a url',
    "the string 'http://x'": 'http://x',
    'an empty string': '',
  }
  for (const [label, value] of Object.entries(bad)) {
    test(`${label}: throws synchronously an InvalidArgumentError naming "redis"`, () => {
      throwsInvalid(() => createDistLock(value), '"redis"')
    })
  }

  test('a class instance that is not a client is refused', () => {
    throwsInvalid(() => createDistLock(new (class Foo {})()), '"redis"')
    throwsInvalid(() => createDistLock(new Map()), '"redis"')
  })

  test('a malformed URL\'s message does not echo its password', () => {
    const urls = [
      'redis://:hunter2@127.0.0.1:notaport',
      'http://user:hunter2@127.0.0.1:6379',
      'redis://:hunter2@[::1:6379',
      'redis://:hunter2@127.0.0.1:1/notadb',
      'redis://:hunter2@127.0.0.1:1/1.5',
      'rediss+bogus://:hunter2@127.0.0.1:1',
    ]
    for (const url of urls) {
      assert.throws(
        () => createDistLock(url),
        (err) => {
          assert.ok(err instanceof InvalidArgumentError, `${url}: got ${err}`)
          assert.equal(err.code, 'EINVALIDARG')
          assert.match(err.message, /redis/i, url)
          assert.ok(!err.message.includes('hunter2'), `${url}: message echoes the password: ${err.message}`)
          assert.ok(!String(err.stack).includes('hunter2'), `${url}: stack echoes the password`)
          return true
        },
        url,
      )
    }
  })

  test('a malformed { url } is refused naming it, without its password', () => {
    assert.throws(
      () => createDistLock({ url: 'mysql://:hunter2@x' }),
      (err) => err.code === 'EINVALIDARG' && err.message.includes('url') && !err.message.includes('hunter2'),
    )
  })
})

describe('lock options', () => {
  test('defaults', async () => {
    const dl = track(createDistLock(server.url))
    assert.deepEqual(dl.options, { ttl: 30000, retryDelay: 50, maxRetries: -1, keyPrefix: 'lock:', autoExtend: false, fair: false, driftFactor: 0.01, evictionPolicy: 'warn' })
    const dl2 = track(createDistLock(server.url, {}))
    assert.deepEqual(dl2.options, { ttl: 30000, retryDelay: 50, maxRetries: -1, keyPrefix: 'lock:', autoExtend: false, fair: false, driftFactor: 0.01, evictionPolicy: 'warn' })
    const dl3 = track(createDistLock(server.url, undefined))
    assert.deepEqual(dl3.options, { ttl: 30000, retryDelay: 50, maxRetries: -1, keyPrefix: 'lock:', autoExtend: false, fair: false, driftFactor: 0.01, evictionPolicy: 'warn' })
  })

  test('given options are kept; missing ones take their default', () => {
    const dl = track(createDistLock(server.url, { ttl: 1234, maxRetries: 0 }))
    assert.deepEqual(dl.options, { ttl: 1234, retryDelay: 50, maxRetries: 0, keyPrefix: 'lock:', autoExtend: false, fair: false, driftFactor: 0.01, evictionPolicy: 'warn' })
    const dl2 = track(createDistLock(server.url, { ttl: 1, retryDelay: 0, maxRetries: 7, keyPrefix: '' }))
    assert.deepEqual(dl2.options, { ttl: 1, retryDelay: 0, maxRetries: 7, keyPrefix: '', autoExtend: false, fair: false, driftFactor: 0.01, evictionPolicy: 'warn' })
  })

  test('options is a copy: changing it changes nothing', async () => {
    const dl = track(createDistLock(server.url, { keyPrefix: 'copy:' }))
    dl.options.keyPrefix = 'mutated:'
    assert.equal(dl.options.keyPrefix, 'copy:')
    const lock = await dl.acquire('r')
    assert.equal(lock.key, 'copy:r')
    await lock.release()
  })

  test('the ttl option is the PTTL of the key', async () => {
    const dl = track(createDistLock(server.url, { ttl: 4000, keyPrefix: 'ttlopt:' }))
    const lock = await dl.acquire('r')
    const pttl = Number(server.cli('PTTL', 'ttlopt:r'))
    assert.ok(pttl > 2000 && pttl <= 4000, `PTTL ${pttl}`)
    await lock.release()
  })

  const invalid = [
    ['ttl', 0],
    ['ttl', -1],
    ['ttl', 1.5],
    ['ttl', NaN],
    ['ttl', Infinity],
    ['ttl', '100'],
    ['ttl', null],
    ['retryDelay', -1],
    ['retryDelay', 0.5],
    ['retryDelay', 'x'],
    ['maxRetries', -2],
    ['maxRetries', 1.5],
    ['maxRetries', NaN],
    ['keyPrefix', 5],
    ['connectTimeout', 0],
    ['connectTimeout', -1],
    ['commandTimeout', 0],
    ['commandTimeout', -1],
  ]
  for (const [name, value] of invalid) {
    test(`${name}: ${typeof value === 'string' ? JSON.stringify(value) : String(value)} is refused at construction`, () => {
      throwsInvalid(() => createDistLock(server.url, { [name]: value }), name)
    })
  }

  test('a keyPrefix with a lone surrogate is refused, or kept exactly (never silently altered)', async () => {
    // Like a resource name, a lone surrogate has no UTF-8 form. Either the
    // prefix is refused at construction (as acquire refuses such a name), or
    // it must keep key === keyPrefix + resourceName and distinct prefixes
    // must not share keys.
    let a
    let b
    try {
      a = track(createDistLock(server.url, { keyPrefix: 'ls\uD800:', maxRetries: 0 }))
      b = track(createDistLock(server.url, { keyPrefix: 'ls\uDC00:', maxRetries: 0 }))
    } catch (err) {
      assert.ok(err instanceof InvalidArgumentError, `got ${err}`)
      assert.equal(err.code, 'EINVALIDARG')
      assert.match(err.message, /keyPrefix/)
      return
    }
    assert.equal(a.options.keyPrefix, 'ls\uD800:', 'options.keyPrefix is the prefix given')
    const la = await a.acquire('x')
    assert.ok(la)
    try {
      assert.equal(la.key, 'ls\uD800:x', 'lock.key === keyPrefix + resourceName')
      const lb = await b.acquire('x')
      assert.ok(lb, 'a different prefix is a different lock')
      await lb.release()
    } finally {
      await la.release()
    }
  })

  test('an unknown option ({ tll: 100 }) is refused, naming it', () => {
    throwsInvalid(() => createDistLock(server.url, { tll: 100 }), 'tll')
  })

  test('options that are not an object are refused', () => {
    for (const value of [5, 'x', true, [], () => {}, null]) {
      throwsInvalid(() => createDistLock(server.url, value), 'options')
    }
  })

  test('invalid timeouts in the connection object are refused, naming them', () => {
    throwsInvalid(() => createDistLock({ port: server.port, connectTimeout: 0 }), 'connectTimeout')
    throwsInvalid(() => createDistLock({ port: server.port, connectTimeout: -1 }), 'connectTimeout')
    throwsInvalid(() => createDistLock({ port: server.port, commandTimeout: 0 }), 'commandTimeout')
    throwsInvalid(() => createDistLock({ url: server.url, commandTimeout: -1 }), 'commandTimeout')
  })

  test('connectTimeout and commandTimeout are accepted in the options', async () => {
    const dl = track(createDistLock(server.url, { connectTimeout: 1000, commandTimeout: 2000, keyPrefix: 'to:' }))
    await acquireInDb(dl, 'r', 0)
    // They are connection settings, not lock options.
    assert.deepEqual(dl.options, { ttl: 30000, retryDelay: 50, maxRetries: -1, keyPrefix: 'to:', autoExtend: false, fair: false, driftFactor: 0.01, evictionPolicy: 'warn' })
  })

  test('a bad value in an options object is reported before anything connects', () => {
    // The whole construction throws: no manager half-made.
    throwsInvalid(() => createDistLock({ port: server.port, db: 1 }, { ttl: -5 }), 'ttl')
  })
})

describe('error classes', () => {
  const classes = [
    ['InvalidArgumentError', InvalidArgumentError, 'EINVALIDARG'],
    ['ConnectionError', ConnectionError, 'ECONNECTION'],
    ['RedisError', RedisError, 'EREDIS'],
    ['LockLostError', LockLostError, 'ELOCKLOST'],
    ['ClosedError', ClosedError, 'ECLOSED'],
  ]

  test('DistLockError is exported and is an Error', () => {
    assert.equal(typeof DistLockError, 'function')
    const err = new DistLockError('base', 'ESOMETHING')
    assert.ok(err instanceof Error)
    assert.ok(err instanceof DistLockError)
    assert.equal(err.message, 'base')
    assert.equal(err.code, 'ESOMETHING')
  })

  for (const [name, ErrorClass, code] of classes) {
    test(`${name}: exported, code ${code}, instanceof DistLockError`, () => {
      assert.equal(typeof ErrorClass, 'function')
      assert.equal(ErrorClass.name, name)
      const err = new ErrorClass('msg')
      assert.equal(err.code, code)
      assert.equal(err.name, name)
      assert.equal(err.message, 'msg')
      assert.ok(err instanceof ErrorClass)
      assert.ok(err instanceof DistLockError)
      assert.ok(err instanceof Error)
      assert.ok(typeof err.stack === 'string')
      for (const [, Other] of classes) {
        if (Other !== ErrorClass) assert.ok(!(err instanceof Other), `${name} is not a ${Other.name}`)
      }
    })
  }

  test('InvalidArgumentError is a TypeError; the others are not', () => {
    assert.ok(new InvalidArgumentError('x') instanceof TypeError)
    for (const C of [ConnectionError, RedisError, LockLostError, ClosedError]) {
      assert.ok(!(new C('x') instanceof TypeError), C.name)
    }
  })

  test('foreign errors are not DistLockErrors', () => {
    assert.ok(!(new Error('x') instanceof DistLockError))
    assert.ok(!(new TypeError('x') instanceof DistLockError))
    assert.ok(!(null instanceof DistLockError))
    assert.ok(!({ code: 'EINVALIDARG' } instanceof DistLockError))
  })

  test('errors from real operations are instances of the exported classes', async () => {
    const dl = createDistLock(server.url, { keyPrefix: 'errs:', ttl: 100 })
    const lock = await dl.acquire('r')
    await new Promise((resolve) => setTimeout(resolve, 300))
    await assert.rejects(lock.extend(1), (err) => err instanceof LockLostError && err instanceof DistLockError)
    await dl.close()
    await assert.rejects(dl.acquire('r'), (err) => err instanceof ClosedError && err.code === 'ECLOSED')
  })
})
