#!/usr/bin/env node
'use strict'

// The dist-lock command-line tool (manual: docs/cli.md, `dist-lock --help`).
//
//   dist-lock run [options] <resource> -- <command> [<arg>...]
//   dist-lock status [options] <resource>
//
// The parts live in lib/cli/: args.js (the command line), run.js, status.js,
// help.js (the manual, written once) and common.js (exit codes, messages).
// The library is loaded only once the arguments are valid, so `--help`,
// `--version` and usage errors work even where the native addon cannot load.

const { UsageError, parseArgs } = require('../lib/cli/args.js')
const { EXIT_SOFTWARE, EXIT_USAGE } = require('../lib/cli/common.js')
const { HELP, USAGE } = require('../lib/cli/help.js')

async function main(args) {
  let parsed
  try {
    parsed = parseArgs(args)
  } catch (err) {
    if (!(err instanceof UsageError)) throw err
    process.stderr.write(`dist-lock: ${err.message}\n${USAGE}\n`)
    return EXIT_USAGE
  }
  switch (parsed.command) {
    case 'help':
      process.stdout.write(HELP)
      return 0
    case 'version':
      process.stdout.write(`${require('../package.json').version}\n`)
      return 0
    case 'status':
      return require('../lib/cli/status.js').status(parsed)
    default:
      return require('../lib/cli/run.js').run(parsed)
  }
}

// `dist-lock --help | head` closes stdout early: not an error of ours.
process.stdout.on('error', (err) => {
  if (err.code !== 'EPIPE') throw err
})

main(process.argv.slice(2))
  .then(
    (code) => {
      process.exitCode = code
    },
    (err) => {
      process.stderr.write(`dist-lock: internal error: ${err && err.stack ? err.stack : err}\n`)
      process.exitCode = EXIT_SOFTWARE
    },
  )
  .finally(() => {
    // Everything is closed by now and the process exits by itself. Should a
    // handle nobody knows of keep it alive, exit anyway a little later.
    setTimeout(() => process.exit(), 2000).unref()
  })
