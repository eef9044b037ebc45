'use strict'

// One adapter per library, all with the same face:
//
//   { id, name, peer, create(url, { ttl, retryDelay }) → instance }
//   instance: { acquire(key) → handle, release(handle), close(), sent }
//
// `acquire` waits until it is granted (unlimited retries, every
// `retryDelay` ms, no jitter); `release` is owner-checked. `sent` lists the
// Redis commands the library sends itself (the others in the counts run
// inside its Lua scripts), to tell round trips from commands.
//
// The peers' APIs are those of their installed sources: redlock 4.2.0
// (redlock.js), redlock 5.0.0-beta.2 (dist/cjs/index.js), redis-semaphore
// 5.8.0 (lib/RedisMutex.js, lib/mutex/*.js).

const { randomUUID } = require('node:crypto')
const Redis = require('ioredis')

function ioredis(url) {
  return new Redis(url, { lazyConnect: false })
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// The baseline: SET key id NX PX ttl, polled every retryDelay; release by a
// compare-and-delete script (EVALSHA, EVAL once when the script is unknown).
const bare = {
  id: 'bare',
  name: 'ioredis loop',
  peer: true,
  create(url, { ttl, retryDelay }) {
    const client = ioredis(url)
    client.defineCommand('compareAndDelete', {
      numberOfKeys: 1,
      lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    })
    return {
      sent: ['set', 'evalsha', 'eval'],
      async acquire(key) {
        const id = randomUUID()
        for (;;) {
          if ((await client.set(key, id, 'PX', ttl, 'NX')) === 'OK') return { key, id }
          await sleep(retryDelay)
        }
      },
      release(handle) {
        return client.compareAndDelete(handle.key, handle.id)
      },
      async close() {
        client.disconnect()
      },
    }
  },
}

// node-redlock 4: `new Redlock(clients, options)`, `lock(resource, ttl)`,
// `lock.unlock()`. A refused attempt also runs its unlock script (it undoes
// partial locks on the other servers) before it waits.
const redlock4 = {
  id: 'redlock4',
  name: 'redlock 4.2.0',
  peer: true,
  create(url, { ttl, retryDelay }) {
    const Redlock = require('redlock')
    const client = ioredis(url)
    const redlock = new Redlock([client], { retryCount: -1, retryDelay, retryJitter: 0 })
    redlock.on('clientError', () => {})
    return {
      sent: ['evalsha', 'eval'],
      acquire: (key) => redlock.lock(key, ttl),
      release: (lock) => lock.unlock(),
      async close() {
        client.disconnect()
      },
    }
  },
}

// node-redlock 5 beta: `new Redlock(clients, settings)`,
// `acquire([resource], ttl)`, `lock.release()`. It emits 'error' for every
// refused attempt, so a listener is needed.
function redlock5Adapter() {
  let Redlock
  try {
    Redlock = require('redlock5').default
  } catch {
    return null // not installed: left out
  }
  return {
    id: 'redlock5',
    name: 'redlock 5.0.0-beta.2',
    peer: true,
    create(url, { ttl, retryDelay }) {
      const client = ioredis(url)
      const redlock = new Redlock([client], { retryCount: -1, retryDelay, retryJitter: 0 })
      redlock.on('error', () => {})
      return {
        sent: ['evalsha', 'eval'],
        acquire: (key) => redlock.acquire([key], ttl),
        release: (lock) => lock.release(),
        async close() {
          client.disconnect()
        },
      }
    },
  }
}

// redis-semaphore's Mutex: one instance per acquisition (its id is the
// instance's). `refreshInterval: 0` turns off its auto-refresh timer, as
// dist-lock and the others do not extend either.
const semaphore = {
  id: 'semaphore',
  name: 'redis-semaphore 5.8.0',
  peer: true,
  create(url, { ttl, retryDelay }) {
    const { Mutex } = require('redis-semaphore')
    const client = ioredis(url)
    const options = { lockTimeout: ttl, acquireTimeout: 600_000, retryInterval: retryDelay, refreshInterval: 0 }
    return {
      sent: ['set', 'evalsha', 'eval'],
      async acquire(key) {
        const mutex = new Mutex(client, key, options)
        await mutex.acquire()
        return mutex
      },
      release: (mutex) => mutex.release(),
      async close() {
        client.disconnect()
      },
    }
  },
}

function distLockAdapter(fair) {
  return {
    id: fair ? 'dist-lock-fair' : 'dist-lock',
    name: fair ? 'dist-lock fair' : 'dist-lock',
    peer: false,
    create(url, { ttl, retryDelay }) {
      const distLock = require('..')(url, { ttl, retryDelay, fair })
      return {
        sent: ['evalsha', 'eval', 'script', 'subscribe', 'unsubscribe', 'ping', 'hello', 'client', 'select'],
        async acquire(key) {
          const lock = await distLock.acquire(key)
          if (lock === false) throw new Error('dist-lock gave up although retries are unlimited')
          return lock
        },
        release: (lock) => lock.release(),
        close: () => distLock.close(),
      }
    },
  }
}

/** Every library that is installed; the baseline first. */
const LIBRARIES = [bare, redlock4, redlock5Adapter(), semaphore, distLockAdapter(false), distLockAdapter(true)].filter(
  Boolean,
)

function library(id) {
  const lib = LIBRARIES.find((l) => l.id === id)
  if (!lib) throw new Error(`unknown library ${id}`)
  return lib
}

module.exports = { LIBRARIES, library }
