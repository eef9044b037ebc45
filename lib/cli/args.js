'use strict'

// The command line of dist-lock, read with node:util.parseArgs. Its tokens
// are checked here (not by parseArgs' strict mode) so that a value may start
// with a dash (`--key-prefix -x`) and the messages name the option as typed.

const { parseArgs: parseTokens } = require('node:util')

/** A bad command line: reported with the short usage, exit status 64. */
class UsageError extends Error {}

/**
 * The options, in parseArgs' form plus: `key`, the name in the parsed
 * options; `value`, what a string option's value is (for messages); `min`,
 * a whole number of milliseconds, at least `min`; `runOnly`, refused by
 * `status`.
 */
const OPTIONS = {
  redis: { type: 'string', key: 'redis', value: 'url' },
  'key-prefix': { type: 'string', key: 'keyPrefix', value: 'prefix' },
  ttl: { type: 'string', key: 'ttl', value: 'ms', min: 1, runOnly: true },
  wait: { type: 'string', key: 'wait', value: 'ms', min: 0, runOnly: true },
  'no-wait': { type: 'boolean', key: 'noWait', runOnly: true },
  fair: { type: 'boolean', key: 'fair', runOnly: true },
  'kill-after': { type: 'string', key: 'killAfter', value: 'ms', min: 0, runOnly: true },
  quiet: { type: 'boolean', short: 'q', key: 'quiet' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
}

/** Parses a whole, non-negative number of milliseconds given to `name`. */
function parseMs(name, text, min) {
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN
  if (!Number.isSafeInteger(n) || n < min) {
    throw new UsageError(
      `invalid value for ${name}: ${JSON.stringify(text)} (expected a whole number of milliseconds, at least ${min})`,
    )
  }
  return n
}

/**
 * The options and positionals of `own` (the arguments before `--`), in
 * order; `{ command: 'help' | 'version' }` at the first --help or --version.
 */
function readOptions(own) {
  const config = Object.fromEntries(
    Object.entries(OPTIONS).map(([name, { type, short }]) => [name, short ? { type, short } : { type }]),
  )
  const { tokens } = parseTokens({ args: own, options: config, strict: false, allowPositionals: true, tokens: true })
  const positionals = []
  const options = {}
  const given = []
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value)
      continue
    }
    if (token.kind !== 'option') continue
    const spec = Object.hasOwn(OPTIONS, token.name) ? OPTIONS[token.name] : undefined
    // parseArgs names `-q` "quiet"; messages name the long form.
    const name = spec === undefined ? token.rawName : `--${token.name}`
    if (spec === undefined) throw new UsageError(`unknown option ${JSON.stringify(token.rawName)}`)
    if (token.name === 'help' || token.name === 'version') return { command: token.name }
    given.push(token.name)
    if (spec.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`option ${name} takes no value`)
      options[spec.key] = true
      continue
    }
    if (token.value === undefined) throw new UsageError(`option ${name} needs a value (${name} <${spec.value}>)`)
    options[spec.key] = spec.min !== undefined ? parseMs(name, token.value, spec.min) : token.value
  }
  return { positionals, options, given }
}

/** Checks the command, its resource and what only `run` or `status` accepts. */
function checkCommand({ positionals, options, given }, argv) {
  const [command, resource, ...extra] = positionals
  if (command === undefined) throw new UsageError('no command given')
  if (command === 'help') return { command: 'help' }
  if (command !== 'run' && command !== 'status') {
    throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  }
  if (resource === undefined) throw new UsageError(`${command}: missing <resource>`)
  if (resource === '') throw new UsageError(`${command}: the resource name must not be empty`)
  if (extra.length > 0) {
    throw new UsageError(
      command === 'run'
        ? `run: unexpected argument ${JSON.stringify(extra[0])}; put the command to run after "--"`
        : `status: unexpected argument ${JSON.stringify(extra[0])}`,
    )
  }
  if (command === 'status') {
    const runOnly = given.find((name) => OPTIONS[name].runOnly)
    if (runOnly !== undefined) throw new UsageError(`status: option --${runOnly} applies to run only`)
    if (argv !== null) throw new UsageError('status: takes no command (nothing may follow "--")')
  } else {
    if (argv === null || argv.length === 0) {
      throw new UsageError('run: missing the command to run, after "--"')
    }
    if (options.wait !== undefined && options.noWait) {
      throw new UsageError('run: --wait and --no-wait exclude each other')
    }
  }
  return { command, resource, options, argv }
}

/**
 * Parses the arguments (without `node` and the script). Returns
 * `{ command: 'help' | 'version' }`, or `{ command: 'run' | 'status',
 * resource, options, argv }` where `argv` is the command to run. Throws
 * UsageError. Options may come before or after the command name and the
 * resource; everything after the first `--` is the command to run.
 */
function parseArgs(args) {
  const dashes = args.indexOf('--')
  const own = dashes === -1 ? args : args.slice(0, dashes)
  const argv = dashes === -1 ? null : args.slice(dashes + 1)
  const read = readOptions(own)
  if (read.command !== undefined) return read
  return checkCommand(read, argv)
}

module.exports = { UsageError, parseArgs }
