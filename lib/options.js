'use strict'

// The option schemas and the checks of what only JS can check: names and
// types of options, AbortSignal, well-formed strings. Values and ranges
// (ttl, retryDelay, maxRetries, timeout, driftFactor, waitReplicas, ...) and
// every default are checked in the Rust core (src/config.rs).

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
      // An empty list is refused by the core (src/config.rs).
      if (type === 'array' && !Array.isArray(v)) {
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

function checkResourceName(resourceName) {
  // The empty name is refused by the core (src/config.rs key_for).
  if (typeof resourceName !== 'string') {
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
  CLUSTER_OPTIONS,
  CONNECTION_OPTIONS,
  MANAGER_OPTIONS,
  SENTINEL_OPTIONS,
  checkOptions,
  checkResourceName,
  isPlainObject,
}
