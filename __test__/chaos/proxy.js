'use strict'

// A TCP proxy for chaos tests, between clients and one Redis server, on the
// loopback interface only. It injects network faults on command:
//
//   const proxy = await new ChaosProxy(redis.port).start()
//   proxy.port              // point clients here
//   proxy.setLatency(20)    // delay every chunk by 20 ms, in each direction
//   proxy.stall()           // stop forwarding; sockets stay open
//   proxy.resume()          // forward again (what was held back goes first)
//   proxy.cutAll()          // destroy every client and upstream socket
//   proxy.blackhole(true)   // new connections: accepted, never answered;
//                           // existing ones: stalled. blackhole(false) heals
//                           // the existing ones (they forward again)
//   await proxy.close()
//
// Chunks are forwarded in order per direction: latency and stalls delay
// them, never reorder or drop them (a cut drops whatever was held back).

const net = require('node:net')

/** One direction of one connection: an ordered queue of delayed chunks. */
class Pipe {
  constructor(proxy, from, to) {
    this.proxy = proxy
    this.from = from
    this.to = to
    this.queue = [] // { chunk, due }
    this.timer = null
    this.ready = false // `to` is connected
    this.held = false // this connection is stalled on its own (blackhole)
    from.on('data', (chunk) => {
      this.queue.push({ chunk, due: performance.now() + this.proxy.latency })
      this.proxy.bytesIn += chunk.length
      this.pump()
    })
  }

  get blocked() {
    return !this.ready || this.held || this.proxy.stalled || this.to.destroyed
  }

  pump() {
    if (this.timer !== null) return
    while (this.queue.length > 0 && !this.blocked) {
      const wait = this.queue[0].due - performance.now()
      if (wait > 0) {
        this.timer = setTimeout(() => {
          this.timer = null
          this.pump()
        }, Math.ceil(wait))
        return
      }
      const { chunk } = this.queue.shift()
      this.to.write(chunk)
    }
  }

  clear() {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.queue.length = 0
  }
}

class ChaosProxy {
  /** @param {number} targetPort the Redis port on 127.0.0.1 */
  constructor(targetPort, { host = '127.0.0.1' } = {}) {
    this.targetPort = targetPort
    this.host = host
    this.latency = 0
    this.stalled = false
    this.blackholed = false
    this.server = null
    this.connections = new Set() // { client, upstream, pipes, held }
    /** Counters, for the tests' figures. */
    this.accepted = 0
    this.cuts = 0
    this.bytesIn = 0
  }

  /** Listens on a free loopback port; resolves to the proxy's control object. */
  start() {
    return new Promise((resolve, reject) => {
      this.server = net.createServer((client) => this.#accept(client))
      this.server.once('error', reject)
      this.server.listen(0, this.host, () => {
        this.server.off('error', reject)
        this.port = this.server.address().port
        resolve(this.#control())
      })
    })
  }

  #control() {
    return {
      port: this.port,
      url: `redis://127.0.0.1:${this.port}`,
      setLatency: (ms) => this.setLatency(ms),
      stall: () => this.stall(),
      resume: () => this.resume(),
      cutAll: () => this.cutAll(),
      blackhole: (on) => this.blackhole(on),
      close: () => this.close(),
      stats: () => this.stats(),
    }
  }

  #accept(client) {
    this.accepted++
    client.setNoDelay(true)
    const conn = { client, upstream: null, pipes: [], blackholed: false }
    this.connections.add(conn)
    const drop = () => this.#drop(conn)
    client.on('error', drop)
    client.on('close', drop)
    if (this.blackholed) {
      // Accepted, never answered: what the client sends is read and
      // discarded, nothing is connected upstream.
      conn.blackholed = true
      client.on('data', () => {})
      return
    }
    const upstream = net.connect(this.targetPort, '127.0.0.1')
    upstream.setNoDelay(true)
    conn.upstream = upstream
    const up = new Pipe(this, client, upstream)
    const down = new Pipe(this, upstream, client)
    down.ready = true // the client is connected already
    conn.pipes = [up, down]
    upstream.on('error', drop)
    upstream.on('close', drop)
    upstream.once('connect', () => {
      up.ready = true
      up.pump()
    })
  }

  #drop(conn) {
    if (!this.connections.delete(conn)) return
    for (const p of conn.pipes) p.clear()
    conn.client.destroy()
    if (conn.upstream) conn.upstream.destroy()
  }

  /** Delays every chunk by `ms` in each direction (0: no delay). */
  setLatency(ms) {
    this.latency = Math.max(0, Number(ms) || 0)
  }

  /** Stops forwarding in both directions; sockets stay open, data waits. */
  stall() {
    this.stalled = true
  }

  /** Forwards again what waited and what comes next. */
  resume() {
    this.stalled = false
    this.#pumpAll()
  }

  #pumpAll() {
    for (const conn of this.connections) for (const p of conn.pipes) p.pump()
  }

  /** Destroys every client and upstream socket (what waited is dropped). */
  cutAll() {
    this.cuts++
    for (const conn of [...this.connections]) this.#drop(conn)
  }

  /**
   * `true`: new connections are accepted and never answered, existing ones
   * stall. `false`: the existing ones forward again; connections accepted
   * during the blackhole stay silent until their clients give up.
   */
  blackhole(on) {
    this.blackholed = Boolean(on)
    for (const conn of this.connections) {
      for (const p of conn.pipes) p.held = this.blackholed
    }
    if (!this.blackholed) this.#pumpAll()
  }

  stats() {
    return {
      accepted: this.accepted,
      open: this.connections.size,
      cuts: this.cuts,
      bytesIn: this.bytesIn,
    }
  }

  /** Destroys every socket and stops listening. */
  close() {
    for (const conn of [...this.connections]) this.#drop(conn)
    return new Promise((resolve) => {
      if (!this.server || !this.server.listening) return resolve()
      this.server.close(() => resolve())
    })
  }
}

module.exports = { ChaosProxy }
