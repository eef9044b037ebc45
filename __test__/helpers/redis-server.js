'use strict'

// Starts and stops throwaway `redis-server` processes on free loopback ports.
// Used by the tests, the demo and the benchmark. It only ever stops the
// processes it started itself.

const { spawn, execFileSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

/** A free TCP port on 127.0.0.1 (the OS picks it; released before use). */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** Resolves once something accepts TCP connections on `port`, or rejects after `timeoutMs`. */
function waitForPort(port, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const sock = net.connect(port, '127.0.0.1')
      sock.once('connect', () => {
        sock.destroy()
        resolve()
      })
      sock.once('error', () => {
        sock.destroy()
        if (Date.now() > deadline) reject(new Error(`nothing listens on port ${port} after ${timeoutMs} ms`))
        else setTimeout(attempt, 25)
      })
    }
    attempt()
  })
}

// The servers' folders go when this process exits (after a restart test the
// same folder is used again, so they stay until then).
const folders = new Set()
process.on('exit', () => {
  for (const dir of folders) fs.rmSync(dir, { recursive: true, force: true })
})

function hasRedisServer() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * A redis-server of our own. `start()` launches it (on the same port again
 * after a `stop()`, so clients can reconnect), `stop()` kills it.
 */
class RedisServer {
  constructor({ port, args = [] } = {}) {
    this.port = port
    this.args = args
    this.proc = null
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`
  }

  /** What the server is, in error messages. */
  get what() {
    return 'redis-server'
  }

  /** The arguments of `redis-server` (a subclass may start it otherwise). */
  commandLine() {
    // Its own folder: a replica's sync or a test's AOF writes files there.
    if (this.dir === undefined) {
      this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-redis-'))
      folders.add(this.dir)
    }
    return [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.dir,
      ...this.args,
    ]
  }

  async start() {
    if (this.proc) return this
    if (this.port === undefined) this.port = await freePort()
    const proc = spawn('redis-server', this.commandLine(), { stdio: ['ignore', 'ignore', 'pipe'] })
    this.proc = proc
    let stderr = ''
    proc.stderr.on('data', (d) => (stderr += d))
    const exited = new Promise((resolve) => proc.once('exit', resolve))
    this.exited = exited
    const failed = exited.then((code) => {
      throw new Error(`${this.what} on port ${this.port} exited with ${code}: ${stderr}`)
    })
    await Promise.race([waitForPort(this.port), failed])
    return this
  }

  /** Kills the server (SIGKILL unless told otherwise) and waits for its exit. */
  async stop(signal = 'SIGKILL') {
    const proc = this.proc
    if (!proc) return
    this.proc = null
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill(signal)
    }
    await this.exited
  }

  /** Runs `redis-cli` against this server and returns its trimmed output. */
  cli(...args) {
    return execFileSync('redis-cli', ['-p', String(this.port), ...args.map(String)], {
      encoding: 'utf8',
    }).trim()
  }
}

/** Starts a new server on a free port. */
async function startRedis(options) {
  return new RedisServer(options).start()
}

module.exports = { RedisServer, startRedis, freePort, waitForPort, hasRedisServer }
