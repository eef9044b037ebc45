'use strict'

// One adapter per library, all with the same face:
//
//   { id, name, peer, create(url, { ttl, retryDelay }) → instance }
//
// (`reference`: a row that is not a library; `baselineOf`: a baseline build
// of the dist-lock mode with that id.)
//   instance: { acquire(key) → handle, release(handle), close(), sent }
//
// (The scale-out libraries at the end take a topology's node URLs instead
// of `url`.)
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
// `bareLoop`: its acquire and release over `client` (one server's client, or
// an ioredis Cluster client in the scale-out part).
function bareLoop(client, { ttl, retryDelay }) {
  client.defineCommand('compareAndDelete', {
    numberOfKeys: 1,
    lua: "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
  })
  return {
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
  }
}

const bare = {
  id: 'bare',
  name: 'ioredis loop',
  peer: true,
  create(url, { ttl, retryDelay }) {
    const client = ioredis(url)
    return {
      ...bareLoop(client, { ttl, retryDelay }),
      sent: ['set', 'evalsha', 'eval'],
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

const DIST_LOCK_SENT = ['evalsha', 'eval', 'script', 'subscribe', 'unsubscribe', 'ping', 'hello', 'client', 'select']

/**
 * A dist-lock manager on `connection` (a URL, an array of masters,
 * `{ cluster }`), with the adapters' face. `from`: the checkout whose build
 * is measured (this one by default; see `baselineAdapters`).
 */
function distLockInstance(connection, { ttl, retryDelay, fair }, from = '..') {
  const distLock = require(from)(connection, { ttl, retryDelay, fair })
  return {
    sent: Array.isArray(connection) || typeof connection === 'string' ? DIST_LOCK_SENT : DIST_LOCK_CLUSTER_SENT,
    async acquire(key) {
      const lock = await distLock.acquire(key)
      if (lock === false) throw new Error('dist-lock gave up although retries are unlimited')
      return lock
    },
    release: (lock) => lock.release(),
    close: () => distLock.close(),
  }
}

function distLockAdapter(fair) {
  return {
    id: fair ? 'dist-lock-fair' : 'dist-lock',
    name: fair ? 'dist-lock fair' : 'dist-lock',
    peer: false,
    create(url, { ttl, retryDelay }) {
      return distLockInstance(url, { ttl, retryDelay, fair })
    },
  }
}

// The baseline build (`npm run bench -- --baseline <dir>`): dist-lock as
// built in another checkout `<dir>` (its index.js, binding.js and addon,
// loaded beside this checkout's, each with its own native runtime), in both
// modes. Neither a peer nor a mode of this build: report.js leaves these rows
// out of the targets and the "÷ best peer" rows, and divides each mode of
// this build by its row here (`baselineOf`). run.js passes the directory to
// the W2 child processes in this environment variable.
const BASELINE_ENV = 'DIST_LOCK_BENCH_BASELINE'

function baselineAdapters(dir = process.env[BASELINE_ENV]) {
  if (!dir) return []
  return [false, true].map((fair) => ({
    id: fair ? 'dist-lock-fair-baseline' : 'dist-lock-baseline',
    name: fair ? 'dist-lock fair (baseline)' : 'dist-lock (baseline)',
    peer: false,
    baselineOf: fair ? 'dist-lock-fair' : 'dist-lock',
    create(url, { ttl, retryDelay }) {
      return distLockInstance(url, { ttl, retryDelay, fair }, dir)
    },
  }))
}

// A reference, not a library: dist-lock's own acquire and release scripts
// (read from the addon, so they are the ones it runs) sent by a plain ioredis
// client from JS. It does the same Redis work per cycle as dist-lock
// (SET PX + INCR of the fencing counter; owner-checked DEL + PUBLISH of
// the release) without the native core, so W1 and W2 split dist-lock's gap
// to the bare loop into the cost of that Redis work and the cost of the
// crossing between JS and the core's thread. Uncontended workloads only: it
// does not wait like dist-lock does.
function distLockScriptsReference() {
  return {
    id: 'dist-lock-scripts',
    name: 'ioredis + dist-lock scripts',
    peer: false,
    reference: true,
    workloads: ['w1', 'w2'],
    create(url, { ttl, retryDelay }) {
      const { luaScripts } = require('../binding.js')
      const lua = luaScripts()
      const client = ioredis(url)
      client.defineCommand('distLockAcquire', { numberOfKeys: 3, lua: lua.acquire })
      client.defineCommand('distLockRelease', { numberOfKeys: 4, lua: lua.release })
      // The derived names of src/lock.rs and src/fencing.rs for a key
      // without braces (the benchmark's keys have none) and the default
      // keyPrefix: `{key}:suffix`, the counter `{lock:}:fencing`, the token
      // `{lock:}:token:<key>`, the old counter `{key}:fence`.
      const tagged = (key, suffix) => `{${key}}:${suffix}`
      const counter = '{lock:}:fencing'
      const token = (key) => `{lock:}:token:${key}`
      return {
        sent: ['evalsha', 'eval'],
        async acquire(key) {
          const id = randomUUID()
          for (;;) {
            const [granted] = await client.distLockAcquire(key, counter, token(key), id, ttl, tagged(key, 'fence'))
            if (granted === 1) return { key, id }
            await sleep(retryDelay)
          }
        },
        release: ({ key, id }) =>
          client.distLockRelease(
            key,
            tagged(key, 'queue'),
            tagged(key, 'queue:deadlines'),
            token(key),
            id,
            tagged(key, 'released'),
            'PUBLISH',
          ),
        async close() {
          client.disconnect()
        },
      }
    },
  }
}

/** Every library that is installed; the baseline first. */
const LIBRARIES = [
  bare,
  redlock4,
  redlock5Adapter(),
  semaphore,
  distLockAdapter(false),
  distLockAdapter(true),
  distLockScriptsReference(),
].filter(
  Boolean,
)

// ---------------------------------------------------------------------------
// Scale-out (benchmark/topologies.js): the same face, but `create` takes the
// topology's node URLs (an array) instead of one URL.
//
// Redlock, 5 independent masters: node-redlock 4 and 5 beta over 5 ioredis
// clients (one per master), against dist-lock's array form (a quorum of the
// masters). The baseline is node-redlock 4.
//
// Redis Cluster, 3 masters: a bare `SET NX PX` loop over an ioredis Cluster
// client (the baseline), node-redlock 4 and 5 beta with that one Cluster
// client as their single "instance" (the lock lives on the master of the
// key's slot), against dist-lock's `{ cluster: [...] }` form.

function clusterClient(urls) {
  const nodes = urls.map((u) => {
    const { hostname, port } = new URL(u)
    return { host: hostname, port: Number(port) }
  })
  return new Redis.Cluster(nodes)
}

function masterClients(urls) {
  return urls.map((u) => ioredis(u))
}

/** `[client]` or `[clients]` as a list, and its disconnection. */
function clientsOf(made) {
  const clients = Array.isArray(made) ? made : [made]
  return { clients, close: async () => clients.forEach((c) => c.disconnect()) }
}

/** The bare SET NX PX loop over one client (here an ioredis Cluster). */
function bareOver(id, name, connect, sent) {
  return {
    id,
    name,
    peer: true,
    create(urls, { ttl, retryDelay }) {
      const client = connect(urls)
      return { ...bareLoop(client, { ttl, retryDelay }), sent, close: async () => client.disconnect() }
    },
  }
}

function redlock4Over(id, name, connect, sent) {
  return {
    id,
    name,
    peer: true,
    create(urls, { ttl, retryDelay }) {
      const Redlock = require('redlock')
      const { clients, close } = clientsOf(connect(urls))
      const redlock = new Redlock(clients, { retryCount: -1, retryDelay, retryJitter: 0 })
      redlock.on('clientError', () => {})
      return { sent, acquire: (key) => redlock.lock(key, ttl), release: (lock) => lock.unlock(), close }
    },
  }
}

function redlock5Over(id, name, connect, sent) {
  let Redlock
  try {
    Redlock = require('redlock5').default
  } catch {
    return null // not installed: left out
  }
  return {
    id,
    name,
    peer: true,
    create(urls, { ttl, retryDelay }) {
      const { clients, close } = clientsOf(connect(urls))
      const redlock = new Redlock(clients, { retryCount: -1, retryDelay, retryJitter: 0 })
      redlock.on('error', () => {})
      return { sent, acquire: (key) => redlock.acquire([key], ttl), release: (lock) => lock.release(), close }
    },
  }
}

function distLockOver(id, name, target, { fair }) {
  return {
    id,
    name,
    peer: false,
    create(urls, { ttl, retryDelay }) {
      return distLockInstance(target(urls), { ttl, retryDelay, fair })
    },
  }
}

const CLUSTER_SENT = ['cluster', 'readonly']
const DIST_LOCK_CLUSTER_SENT = [...DIST_LOCK_SENT, 'ssubscribe', 'sunsubscribe', ...CLUSTER_SENT]

/** The libraries of each scale-out topology, the baseline first. */
const TOPOLOGY_LIBRARIES = {
  masters: [
    redlock4Over('redlock4-masters', 'redlock 4.2.0', masterClients, ['evalsha', 'eval']),
    redlock5Over('redlock5-masters', 'redlock 5.0.0-beta.2', masterClients, ['evalsha', 'eval']),
    distLockOver('dist-lock-masters', 'dist-lock', (urls) => urls, { fair: false }),
  ].filter(Boolean),
  cluster: [
    bareOver('bare-cluster', 'ioredis Cluster loop', clusterClient, ['set', 'evalsha', 'eval', ...CLUSTER_SENT]),
    redlock4Over('redlock4-cluster', 'redlock 4.2.0', clusterClient, ['evalsha', 'eval', ...CLUSTER_SENT]),
    redlock5Over('redlock5-cluster', 'redlock 5.0.0-beta.2', clusterClient, ['evalsha', 'eval', ...CLUSTER_SENT]),
    distLockOver('dist-lock-cluster', 'dist-lock', (urls) => ({ cluster: urls }), { fair: false }),
    distLockOver('dist-lock-fair-cluster', 'dist-lock fair', (urls) => ({ cluster: urls }), { fair: true }),
  ].filter(Boolean),
}

function library(id) {
  const all = [...LIBRARIES, ...baselineAdapters(), ...TOPOLOGY_LIBRARIES.masters, ...TOPOLOGY_LIBRARIES.cluster]
  const lib = all.find((l) => l.id === id)
  if (!lib) throw new Error(`unknown library ${id}`)
  return lib
}

module.exports = { LIBRARIES, TOPOLOGY_LIBRARIES, BASELINE_ENV, baselineAdapters, library }
