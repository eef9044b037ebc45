'use strict'

// `dist-lock status <resource>`: prints "locked" (exit status 1) or "free" (0).

const { describeError, exitCodeOf, makeSay, openManager } = require('./common.js')

async function status({ resource, options }) {
  const say = makeSay(options.quiet)
  let manager
  try {
    manager = openManager(options)
  } catch (err) {
    say(`cannot use Redis: ${describeError(err)}`)
    return exitCodeOf(err)
  }
  try {
    const locked = await manager.isLocked(resource)
    process.stdout.write(locked ? 'locked\n' : 'free\n')
    return locked ? 1 : 0
  } catch (err) {
    say(`cannot query lock "${resource}": ${describeError(err)}`)
    return exitCodeOf(err)
  } finally {
    await manager.close()
  }
}

module.exports = { status }
