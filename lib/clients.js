'use strict'

// What a node-redis (v4/v5) or ioredis client object says about its
// connection: dist-lock opens its own connections with the same settings.

const { invalid } = require('./errors.js')
const { isPlainObject } = require('./options.js')
const { checkUrl, urlFromParts } = require('./urls.js')

/** An object with the command methods of a node-redis or ioredis client. */
function looksLikeClient(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    !isPlainObject(value) &&
    (typeof value.sendCommand === 'function' || typeof value.call === 'function')
  )
}

/**
 * The connection of `client`, unchecked, in the shape of the factory's own
 * options: `{ cluster }` (an ioredis Cluster: `{ cluster, username,
 * password, tls }`), `{ sentinel }` (an ioredis client in Sentinel mode:
 * `{ sentinels, masterName, ... }`) or `{ server: { url, tls } }`, where
 * `tls` holds the client's own TLS options (unset without TLS).
 */
function readClient(client, what) {
  const o = client.options
  if (o === null || typeof o !== 'object') {
    // node-redis Cluster and Sentinel clients keep their options private.
    throw invalid(
      `argument "${what}": the connection options of this client cannot be read (a Redis Cluster or Sentinel client?); ` +
        'those are not supported yet: pass a Redis URL or an options object',
    )
  }
  if (Array.isArray(client.startupNodes) || client.isCluster) {
    const nodeOptions = o.redisOptions || {}
    return {
      cluster: {
        cluster: client.startupNodes,
        username: nodeOptions.username || undefined,
        password: nodeOptions.password || undefined,
        tls: nodeOptions.tls ? { ...nodeOptions.tls } : undefined,
      },
    }
  }
  if (Array.isArray(o.sentinels) && o.sentinels.length > 0) {
    return {
      sentinel: {
        sentinels: o.sentinels,
        masterName: o.name,
        username: o.username || undefined,
        password: o.password || undefined,
        db: o.db || undefined,
        sentinelUsername: o.sentinelUsername || undefined,
        sentinelPassword: o.sentinelPassword || undefined,
      },
    }
  }
  return { server: serverOf(o, what) }
}

const num = (v) => (typeof v === 'number' ? v : undefined)
const str = (v) => (typeof v === 'string' && v !== '' ? v : undefined)

/** `{ url, tls }` of a one-server client's options. */
function serverOf(o, what) {
  if (o.socket !== undefined || o.url !== undefined || o.database !== undefined) {
    // node-redis: { url, socket: { host, port, path, tls }, username, password, database }
    const socket = o.socket || {}
    const base = o.url !== undefined ? new URL(checkUrl(o.url, `${what}.options.url`)) : null
    const url = urlFromParts({
      host: str(socket.host) ?? (base ? str(base.hostname.replace(/^\[|\]$/g, '')) : undefined),
      port: num(socket.port) ?? (base && base.port ? Number(base.port) : undefined),
      path: str(socket.path),
      username: str(o.username) ?? (base ? str(decodeURIComponent(base.username)) : undefined),
      password: str(o.password) ?? (base ? str(decodeURIComponent(base.password)) : undefined),
      db: num(o.database) ?? (base && base.pathname.length > 1 ? Number(base.pathname.slice(1)) : undefined),
    })
    // node-redis keeps the tls.connect options (ca, cert, key, ...) in `socket`.
    const tls = socket.tls === true || base?.protocol === 'rediss:'
    return { url, tls: tls ? socket : undefined }
  }
  // ioredis: { host, port, path, username, password, db, tls }
  const url = urlFromParts({
    host: str(o.host),
    port: num(o.port),
    path: str(o.path),
    username: str(o.username),
    password: str(o.password),
    db: num(o.db),
  })
  return { url, tls: o.tls ? (o.tls === true ? true : { ...o.tls }) : undefined }
}

module.exports = { looksLikeClient, readClient }
