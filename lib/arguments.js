'use strict'

// Checks of the arguments users pass: types and names here, ranges in the
// Rust core (src/config.rs, which also holds every default).

const { invalid, describe } = require('./errors.js')


/** Options that apply to every acquire, per manager or per call. */
const COMMON_OPTIONS = {
  ttl: 'number',
  retryDelay: 'number',
  maxRetries: 'number',
  timeout: 'number',
  fair: 'boolean',
  autoExtend: 'boolean',
  waitReplicas: 'object',
  driftFactor: 'number',
}

/** Options of one acquire. */
const ACQUIRE_OPTIONS = {
  ...COMMON_OPTIONS,
  signal: 'AbortSignal',
}

/** Options of the lock manager. */
const MANAGER_OPTIONS = {
  ...COMMON_OPTIONS,
  keyPrefix: 'string',
  evictionPolicy: 'string',
  connectTimeout: 'number',
  commandTimeout: 'number',
}

const WAIT_REPLICAS_OPTIONS = {
  count: 'number',
  timeoutMs: 'number',
}

const CONNECTION_OPTIONS = {
  url: 'string',
  host: 'string',
  port: 'number',
  path: 'string',
  username: 'string',
  password: 'string',
  db: 'number',
  connectTimeout: 'number',
  commandTimeout: 'number',
  tls: 'tls',
}

/** Options of a Redis Cluster given as `{ cluster: [...] }`. */
const CLUSTER_OPTIONS = {
  cluster: 'array',
  username: 'string',
  password: 'string',
  connectTimeout: 'number',
  commandTimeout: 'number',
  tls: 'tls',
}

/** Options of a Sentinel-managed master given as `{ sentinels: [...], masterName }`. */
const SENTINEL_OPTIONS = {
  sentinels: 'array',
  masterName: 'string',
  username: 'string',
  password: 'string',
  db: 'number',
  sentinelUsername: 'string',
  sentinelPassword: 'string',
  connectTimeout: 'number',
  commandTimeout: 'number',
  tls: 'tls',
}

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
  if ((out.cert === undefined) !== (out.key === undefined)) {
    throw invalid('options "tls.cert" and "tls.key" go together: give both (mutual TLS) or neither')
  }
  return out
}

/** The rediss:// form of a redis:// URL built from parts. */
function secure(url) {
  return url.replace(/^redis:\/\//, 'rediss://')
}

function isPlainObject(value) {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/** Checks names and types of an options object; `undefined` values are skipped. */
function checkOptions(value, allowed, what) {
  if (value === undefined) return {}
  if (!isPlainObject(value)) {
    throw invalid(`argument "${what}" must be an object, got ${describe(value)}`)
  }
  const out = {}
  for (const [name, v] of Object.entries(value)) {
    const type = allowed[name]
    if (type === undefined) {
      throw invalid(
        `unknown option "${name}" in "${what}"; known options: ${Object.keys(allowed).join(', ')}`,
      )
    }
    if (v === undefined) continue
    if (type === 'object') {
      out[name] = checkOptions(v, WAIT_REPLICAS_OPTIONS, name)
      if (out[name].count === undefined || out[name].timeoutMs === undefined) {
        throw invalid(`option "${name}" needs both "count" and "timeoutMs"`)
      }
      continue
    }
    if (type === 'tls' || type === 'array') {
      if (type === 'array' && (!Array.isArray(v) || v.length === 0)) {
        throw invalid(`option "${name}" must be a non-empty array of node URLs or { host, port } objects, got ${describe(v)}`)
      }
      out[name] = v
      continue
    }
    if (type === 'AbortSignal') {
      if (!(v instanceof AbortSignal)) {
        throw invalid(`option "${name}" must be an AbortSignal, got ${describe(v)}`)
      }
      out[name] = v
      continue
    }
    if (typeof v !== type) {
      throw invalid(`option "${name}" must be a ${type}, got ${describe(v)}`)
    }
    if (type === 'string' && !v.isWellFormed()) {
      // A lone surrogate has no UTF-8 form: napi would replace it with U+FFFD.
      throw invalid(`option "${name}" must be a well-formed Unicode string (it has a lone surrogate)`)
    }
    out[name] = v
  }
  return out
}

const URL_SCHEMES = new Set(['redis:', 'rediss:', 'unix:', 'redis+unix:'])

function checkUrl(url, what) {
  let parsed
  try {
    parsed = new URL(url)
  } catch {
    parsed = null
  }
  if (!parsed || !URL_SCHEMES.has(parsed.protocol)) {
    // The URL may hold a password: it is not repeated in the message.
    throw invalid(
      `argument "${what}" is not a valid Redis URL; expected redis://[[user]:password@]host[:port][/db]`,
    )
  }
  if (parsed.port === '0') {
    throw invalid(`argument "${what}": the port of a Redis URL must be from 1 to 65535`)
  }
  if ((parsed.protocol === 'redis:' || parsed.protocol === 'rediss:') && !/^\/?(\d+)?$/.test(parsed.pathname)) {
    throw invalid(`argument "${what}": the path of a Redis URL is a database number (/0, /1, ...)`)
  }
  if (parsed.search !== '' && parsed.protocol !== 'unix:' && parsed.protocol !== 'redis+unix:') {
    throw invalid(`argument "${what}": a redis:// URL takes no query string; give the database as its path (/3)`)
  }
  return url
}

/** Builds `redis://user:password@host:port/db` from parts. */
function urlFromParts({ host, port, path, username, password, db }) {
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw invalid(`option "port" must be an integer from 1 to 65535, got ${describe(port)}`)
  }
  if (db !== undefined && (!Number.isInteger(db) || db < 0)) {
    throw invalid(`option "db" must be a non-negative integer, got ${describe(db)}`)
  }
  if (host !== undefined && host.length === 0) {
    throw invalid('option "host" must be a non-empty string')
  }
  const auth =
    username !== undefined || password !== undefined
      ? `${encodeURIComponent(username ?? '')}:${encodeURIComponent(password ?? '')}@`
      : ''
  if (path !== undefined) {
    const query = new URLSearchParams()
    if (db !== undefined) query.set('db', String(db))
    if (username !== undefined) query.set('user', username)
    if (password !== undefined) query.set('pass', password)
    const q = query.toString()
    return `redis+unix://${encodeURI(path)}${q ? `?${q}` : ''}`
  }
  const h = host ?? '127.0.0.1'
  const hostPart = h.includes(':') && !h.startsWith('[') ? `[${h}]` : h
  return `redis://${auth}${hostPart}:${port ?? 6379}/${db ?? 0}`
}

/** Reads the connection options of a node-redis (v4/v5) or ioredis client. */
function fromClient(client, what) {
  const o = client.options
  const num = (v) => (typeof v === 'number' ? v : undefined)
  const str = (v) => (typeof v === 'string' && v !== '' ? v : undefined)
  if (o.socket !== undefined || o.url !== undefined || o.database !== undefined) {
    // node-redis: { url, socket: { host, port, path, tls }, username, password, database }
    const socket = o.socket || {}
    const base = o.url !== undefined ? new URL(checkUrl(o.url, `${what}.options.url`)) : null
    const tls = socket.tls === true || base?.protocol === 'rediss:'
    const url = urlFromParts({
      host: str(socket.host) ?? (base ? str(base.hostname.replace(/^\[|\]$/g, '')) : undefined),
      port: num(socket.port) ?? (base && base.port ? Number(base.port) : undefined),
      path: str(socket.path),
      username: str(o.username) ?? (base ? str(decodeURIComponent(base.username)) : undefined),
      password: str(o.password) ?? (base ? str(decodeURIComponent(base.password)) : undefined),
      db: num(o.database) ?? (base && base.pathname.length > 1 ? Number(base.pathname.slice(1)) : undefined),
    })
    // node-redis keeps the tls.connect options (ca, cert, key, ...) in `socket`.
    return tls ? { url: secure(url), tls: tlsFrom(socket, false) } : { url }
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
  if (o.tls) return { url: secure(url), tls: tlsFrom(o.tls === true ? true : { ...o.tls }, false) }
  return { url }
}

/** An object with the command methods of a node-redis or ioredis client. */
function looksLikeClient(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    !isPlainObject(value) &&
    (typeof value.sendCommand === 'function' || typeof value.call === 'function')
  )
}

/** The native connection options from the factory's first argument. */
function resolveOne(redis, what) {
  if (typeof redis === 'string') {
    return { url: checkUrl(redis, what) }
  }
  if (looksLikeClient(redis)) {
    const o = redis.options
    if (o === null || typeof o !== 'object') {
      // node-redis Cluster and Sentinel clients keep their options private.
      throw invalid(
        `argument "${what}": the connection options of this client cannot be read (a Redis Cluster or Sentinel client?); ` +
          'those are not supported yet: pass a Redis URL or an options object',
      )
    }
    if (Array.isArray(redis.startupNodes) || redis.isCluster) {
      // An ioredis Cluster: its seed nodes and node options.
      const nodeOptions = o.redisOptions || {}
      return resolveCluster(
        {
          cluster: redis.startupNodes,
          username: nodeOptions.username || undefined,
          password: nodeOptions.password || undefined,
          tls: nodeOptions.tls ? { ...nodeOptions.tls } : undefined,
        },
        what,
        false,
      )
    }
    if (Array.isArray(o.sentinels) && o.sentinels.length > 0) {
      // An ioredis client in Sentinel mode.
      return resolveSentinel(
        {
          sentinels: o.sentinels,
          masterName: o.name,
          username: o.username || undefined,
          password: o.password || undefined,
          db: o.db || undefined,
          sentinelUsername: o.sentinelUsername || undefined,
          sentinelPassword: o.sentinelPassword || undefined,
        },
        what,
        false,
      )
    }
    return fromClient(redis, what)
  }
  if (isPlainObject(redis) && redis.cluster !== undefined) return resolveCluster(redis, what, true)
  if (isPlainObject(redis) && (redis.sentinels !== undefined || redis.masterName !== undefined)) {
    return resolveSentinel(redis, what, true)
  }
  if (isPlainObject(redis)) {
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
  throw invalid(
    `argument "${what}" must be a Redis URL, a connection options object, or a node-redis/ioredis client, got ${describe(redis)}`,
  )
}

/** A node URL from a URL string or `{ host, port }`, with `auth` added when it has none. */
function nodeUrl(node, name, auth, secureScheme) {
  let url
  if (typeof node === 'string') {
    url = checkUrl(node, name)
  } else if (isPlainObject(node) && (node.host !== undefined || node.port !== undefined)) {
    const host = node.host ?? '127.0.0.1'
    if (typeof host !== 'string' || host === '') throw invalid(`option "${name}.host" must be a non-empty string`)
    const port = node.port ?? 6379
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw invalid(`option "${name}.port" must be an integer from 1 to 65535, got ${describe(port)}`)
    }
    url = `redis://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`
  } else {
    throw invalid(`option "${name}" must be a Redis URL or a { host, port } object, got ${describe(node)}`)
  }
  const parsed = new URL(url)
  if (auth && parsed.username === '' && parsed.password === '') {
    if (auth.username !== undefined) parsed.username = encodeURIComponent(auth.username)
    if (auth.password !== undefined) parsed.password = encodeURIComponent(auth.password)
  }
  let out = parsed.toString().replace(/\/$/, '')
  if (secureScheme) out = secure(out)
  return out
}

/** `{ cluster: [nodes], username, password, tls, ... }`: a Redis Cluster. */
function resolveCluster(redis, what, strict) {
  const o = strict ? checkOptions(redis, CLUSTER_OPTIONS, what) : redis
  if (!Array.isArray(o.cluster) || o.cluster.length === 0) {
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
  if (!Array.isArray(o.sentinels) || o.sentinels.length === 0) {
    throw invalid(`option "${what}.sentinels" must be a non-empty array of Sentinel URLs or { host, port } objects`)
  }
  if (typeof o.masterName !== 'string' || o.masterName === '') {
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
  if (redis.length === 0) {
    throw invalid('argument "redis": an array of Redis masters (Redlock) must not be empty')
  }
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

function checkCallback(callback, name = 'callback') {
  if (callback !== undefined && typeof callback !== 'function') {
    throw invalid(`argument "${name}" must be a function or undefined, got ${describe(callback)}`)
  }
}

/**
 * Returns `promise`, or, given a callback, calls it once with (err, value) on
 * a later tick, so an exception it throws reaches `uncaughtException` like
 * that of any Node callback, and is never caught and reported again.
 */
function settle(promise, callback) {
  if (callback === undefined) return promise
  promise.then(
    (value) => process.nextTick(callback, null, value),
    (err) => process.nextTick(callback, err),
  )
  return undefined
}

function checkResourceName(resourceName) {
  if (typeof resourceName !== 'string' || resourceName.length === 0) {
    return invalid(`argument "resourceName" must be a non-empty string, got ${describe(resourceName)}`)
  }
  if (!resourceName.isWellFormed()) {
    // A lone surrogate has no UTF-8 form: two such names would share a key.
    return invalid('argument "resourceName" must be a well-formed Unicode string (it has a lone surrogate)')
  }
  return null
}


module.exports = {
  ACQUIRE_OPTIONS,
  MANAGER_OPTIONS,
  checkCallback,
  checkOptions,
  checkResourceName,
  resolveConnection,
  settle,
}
