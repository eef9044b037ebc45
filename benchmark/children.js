'use strict'

// The benchmark's child processes (benchmark/worker.js): forked with an IPC
// channel, asked to do things by message, each answer awaited within a time
// limit. Every child is tracked so that the run can kill them all at its end
// or on an error.

const { fork } = require('node:child_process')
const path = require('node:path')

const live = new Set()

class Child {
  constructor() {
    this.proc = fork(path.join(__dirname, 'worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.nextId = 0
    this.pending = new Map()
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        live.delete(this)
        for (const { reject, timer } of this.pending.values()) {
          clearTimeout(timer)
          reject(new Error(`benchmark child ${this.proc.pid} exited (${signal || code})`))
        }
        this.pending.clear()
        resolve()
      })
    })
    // A send to a child that is gone fails in `ask`; this only keeps the
    // process's 'error' event from being unhandled.
    this.proc.on('error', () => {})
    this.proc.on('message', (msg) => {
      const waiter = this.pending.get(msg.replyTo)
      if (!waiter) return
      this.pending.delete(msg.replyTo)
      clearTimeout(waiter.timer)
      if (msg.error) waiter.reject(new Error(`in child ${this.proc.pid}: ${msg.error}`))
      else waiter.resolve(msg.result)
    })
    live.add(this)
  }

  /** Sends `{ op, ...args }` and resolves with the child's answer (rejects after `timeoutMs`). */
  ask(op, args, timeoutMs) {
    const id = ++this.nextId
    return new Promise((resolve, reject) => {
      if (!this.proc.connected) {
        reject(new Error(`benchmark child ${this.proc.pid} is gone, cannot ask "${op}"`))
        return
      }
      const timer = setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`benchmark child ${this.proc.pid}: no answer to "${op}" within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { resolve, reject, timer })
      this.proc.send({ id, op, ...args }, (err) => {
        if (!err || !this.pending.has(id)) return
        this.pending.delete(id)
        clearTimeout(timer)
        reject(new Error(`benchmark child ${this.proc.pid}: "${op}" not sent (${err.message})`))
      })
    })
  }

  /** Kills the child (if still running) and waits for its exit. */
  async kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL')
    await this.exited
  }
}

/** Kills every child still running. */
async function killAll() {
  await Promise.all([...live].map((c) => c.kill()))
}

module.exports = { Child, killAll }
