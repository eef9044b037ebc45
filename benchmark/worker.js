'use strict'

// A benchmark child process: runs what the parent asks (the child side of
// W2 and W4) and answers each request by its id. It exits when the parent
// goes away.

const ops = {
  ...require('./w2-parallel.js').childOps,
  ...require('./w4-processes.js').childOps,
}

const state = {}

process.on('message', async (msg) => {
  try {
    const op = ops[msg.op]
    if (!op) throw new Error(`unknown request "${msg.op}"`)
    const result = await op(msg, state)
    process.send({ replyTo: msg.id, result })
  } catch (err) {
    process.send({ replyTo: msg.id, error: err && err.stack ? err.stack : String(err) })
  }
})

process.on('disconnect', () => process.exit(0))
process.on('unhandledRejection', (err) => {
  console.error('benchmark child: unhandled rejection', err)
  process.exit(1)
})
