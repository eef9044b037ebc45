'use strict'

// The native connection options from the factory's first argument: a Redis
// URL, an options object (one server, a Cluster, a Sentinel set), a
// node-redis / ioredis client, or an array of Redlock masters; TLS settings
// and their PEM files.

const { invalid, describe } = require('./errors.js')
const { CLUSTER_OPTIONS, CONNECTION_OPTIONS, SENTINEL_OPTIONS, checkOptions, isPlainObject } = require('./options.js')
const { checkUrl, nodeUrl, secure, urlFromParts } = require('./urls.js')
const { looksLikeClient, readClient } = require('./clients.js')

/** TLS options, named as in Node's `tls.connect` (and so in ioredis and node-redis). */
const TLS_OPTIONS = ['ca', 'cert', 'key', 'rejectUnauthorized']

/** PEM text from what Node's `tls` takes: a string, a Buffer, or an array of them. */
function pem(value, name) {
  const parts = Array.isArray(value) ? value : [value]
  const buffers = parts.map((part) => {
    if (typeof part === 'string') return Buffer.from(part, 'utf8')
    if (part instanceof Uint8Array) return Buffer.from(part)
    throw invalid(`option "tls.${name}" must be a PEM string, a Buffer, or an array of them, got ${describe(part)}`)
  })
  if (buffers.length === 0) throw invalid(`option "tls.${name}" must not be empty`)
  const joined = Buffer.concat(buffers.flatMap((b, i) => (i === 0 ? [b] : [Buffer.from('\n'), b])))
  // Only PEM is read (as by Node's tls for strings); DER or a file name would
  // otherwise yield no certificate at all, and a confusing handshake error.
  const label = name === 'key' ? /-----BEGIN [A-Z ]*PRIVATE KEY-----/ : /-----BEGIN CERTIFICATE-----/
  if (!label.test(joined.toString('latin1'))) {
    throw invalid(
      `option "tls.${name}" holds no PEM ${name === 'key' ? 'private key' : 'certificate'} ` +
        '(give the file\'s contents, e.g. fs.readFileSync(path), not its name)',
    )
  }
  return joined
}

/**
 * The native TLS settings from `true` or `{ ca, cert, key, rejectUnauthorized }`.
 * `strict` refuses unknown names (options the user wrote); a client's own TLS
 * options may hold others (servername, ciphers, ...), which are ignored.
 */
function tlsFrom(value, strict) {
  if (value === true) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(`option "tls" must be true or an object { ca, cert, key, rejectUnauthorized }, got ${describe(value)}`)
  }
  const out = {}
  for (const [name, v] of Object.entries(value)) {
    if (!TLS_OPTIONS.includes(name)) {
      if (strict) throw invalid(`unknown option "${name}" in "tls"; known options: ${TLS_OPTIONS.join(', ')}`)
      continue
    }
    if (v === undefined) continue
    if (name === 'rejectUnauthorized') {
      if (typeof v !== 'boolean') throw invalid(`option "tls.rejectUnauthorized" must be a boolean, got ${describe(v)}`)
      out.rejectUnauthorized = v
    } else {
      out[name] = pem(v, name)
    }
  }
  // Also checked by the core (TlsConfig::check), whose message names the two
  // options in another order for a key without its certificate: kept here.
  if ((out.cert === undefined) !== (out.key === undefined)) {
    throw invalid('options "tls.cert" and "tls.key" go together: give both (mutual TLS) or neither')
  }
  return out
}

/** The native connection options of one server, Cluster or Sentinel set. */
function resolveOne(redis, what) {
  if (typeof redis === 'string') {
    return { url: checkUrl(redis, what) }
  }
  if (looksLikeClient(redis)) {
    const client = readClient(redis, what)
    if (client.cluster) return resolveCluster(client.cluster, what, false)
    if (client.sentinel) return resolveSentinel(client.sentinel, what, false)
    const { url, tls } = client.server
    return tls !== undefined ? { url: secure(url), tls: tlsFrom(tls, false) } : { url }
  }
  if (isPlainObject(redis) && redis.cluster !== undefined) return resolveCluster(redis, what, true)
  if (isPlainObject(redis) && (redis.sentinels !== undefined || redis.masterName !== undefined)) {
    return resolveSentinel(redis, what, true)
  }
  if (isPlainObject(redis)) return resolveServer(redis, what)
  throw invalid(
    `argument "${what}" must be a Redis URL, a connection options object, or a node-redis/ioredis client, got ${describe(redis)}`,
  )
}

/** `{ url }` or `{ host, port, path, username, password, db, tls, ... }`: one server. */
function resolveServer(redis, what) {
  const o = checkOptions(redis, CONNECTION_OPTIONS, what)
  const { url, connectTimeout, commandTimeout, tls, ...parts } = o
  if (url !== undefined && Object.keys(parts).length > 0) {
    throw invalid(`argument "${what}": give either "url" or ${Object.keys(parts).map((k) => `"${k}"`).join(', ')}, not both`)
  }
  if (tls !== undefined && parts.path !== undefined) {
    throw invalid(`argument "${what}": option "tls" does not apply to a Unix socket ("path")`)
  }
  const resolved = url !== undefined ? checkUrl(url, `${what}.url`) : urlFromParts(parts)
  const out = { url: resolved, connectTimeout, commandTimeout }
  if (tls !== undefined && tls !== false) {
    if (url !== undefined && !resolved.startsWith('rediss://')) {
      throw invalid(`argument "${what}": option "tls" needs a rediss:// URL; "url" is plain redis://`)
    }
    if (url === undefined) out.url = secure(resolved)
    out.tls = tlsFrom(tls, true)
  } else if (tls === false && resolved.startsWith('rediss://')) {
    throw invalid(`argument "${what}": option "tls" is false but "url" is rediss:// (TLS)`)
  }
  return out
}

/** `{ cluster: [nodes], username, password, tls, ... }`: a Redis Cluster. */
function resolveCluster(redis, what, strict) {
  const o = strict ? checkOptions(redis, CLUSTER_OPTIONS, what) : redis
  // An empty list is refused by the core (ConnectionConfig::cluster).
  if (!Array.isArray(o.cluster)) {
    throw invalid(`option "${what}.cluster" must be a non-empty array of node URLs or { host, port } objects`)
  }
  const tls = o.tls !== undefined && o.tls !== false ? tlsFrom(o.tls, strict) : undefined
  const seeds = o.cluster.map((n, i) =>
    nodeUrl(n, `${what}.cluster[${i}]`, { username: o.username, password: o.password }, tls !== undefined),
  )
  if (tls === undefined && seeds.some((u) => u.startsWith('rediss://')) && !seeds.every((u) => u.startsWith('rediss://'))) {
    throw invalid(`option "${what}.cluster": mixes redis:// and rediss:// nodes`)
  }
  const out = { cluster: seeds, connectTimeout: o.connectTimeout, commandTimeout: o.commandTimeout }
  if (tls !== undefined) out.tls = tls
  return out
}

/** `{ sentinels: [nodes], masterName, username, password, db, ... }`: a Sentinel-managed master. */
function resolveSentinel(redis, what, strict) {
  const o = strict ? checkOptions(redis, SENTINEL_OPTIONS, what) : redis
  // Empty lists and names are refused by the core (ConnectionConfig::sentinel).
  if (!Array.isArray(o.sentinels)) {
    throw invalid(`option "${what}.sentinels" must be a non-empty array of Sentinel URLs or { host, port } objects`)
  }
  if (typeof o.masterName !== 'string') {
    throw invalid(`option "${what}.masterName" must be the non-empty name of the master the Sentinels monitor`)
  }
  const tls = o.tls !== undefined && o.tls !== false ? tlsFrom(o.tls, strict) : undefined
  const sentinels = o.sentinels.map((n, i) =>
    nodeUrl(n, `${what}.sentinels[${i}]`, { username: o.sentinelUsername, password: o.sentinelPassword }, false),
  )
  // The master's credentials and database, in the form of a URL whose host is not used.
  const master = urlFromParts({ host: 'sentinel-master', username: o.username, password: o.password, db: o.db })
  const out = {
    sentinels,
    masterName: o.masterName,
    url: tls !== undefined ? secure(master) : master,
    connectTimeout: o.connectTimeout,
    commandTimeout: o.commandTimeout,
  }
  if (tls !== undefined) out.tls = tls
  return out
}

/**
 * The native connection options from the factory's first argument: one
 * server (URL, options object or client), or an array of independent
 * masters for Redlock.
 */
function resolveConnection(redis) {
  if (!Array.isArray(redis)) return resolveOne(redis, 'redis')
  // An empty array is refused by the core (QuorumManager::new).
  const nodes = redis.map((r, i) => {
    const node = resolveOne(r, `redis[${i}]`)
    if (node.cluster !== undefined || node.sentinels !== undefined) {
      throw invalid(`argument "redis[${i}]": a Redlock master is one Redis server, not a Cluster or a Sentinel set`)
    }
    return node
  })
  const urls = nodes.map((n) => n.url)
  const seen = new Set()
  for (const [i, url] of urls.entries()) {
    if (seen.has(url)) throw invalid(`argument "redis[${i}]": the same Redis master is listed twice (Redlock needs independent masters)`)
    seen.add(url)
  }
  // One set of TLS settings and time bounds for all masters.
  const tls = nodes.find((n) => n.tls !== undefined)?.tls
  for (const [i, n] of nodes.entries()) {
    if (n.tls !== undefined && JSON.stringify(n.tls) !== JSON.stringify(tls)) {
      throw invalid(`argument "redis[${i}]": every Redlock master must use the same "tls" settings`)
    }
  }
  const out = { redlock: urls }
  if (tls !== undefined) out.tls = tls
  // The most generous bound any master was given applies to all.
  for (const name of ['connectTimeout', 'commandTimeout']) {
    const values = nodes.map((n) => n[name]).filter((v) => v !== undefined)
    if (values.length > 0) out[name] = Math.max(...values)
  }
  return out
}

module.exports = { resolveConnection }
