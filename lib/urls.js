'use strict'

// Redis URLs: checking the ones users give, building them from parts.

const { invalid, describe } = require('./errors.js')
const { isPlainObject } = require('./options.js')

/** The rediss:// form of a redis:// URL built from parts. */
function secure(url) {
  return url.replace(/^redis:\/\//, 'rediss://')
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

module.exports = { checkUrl, nodeUrl, secure, urlFromParts }
