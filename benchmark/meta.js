'use strict'

// What RESULTS.md says of the run: the machine, the versions of the
// libraries, and which dist-lock build was measured.

const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')

function version(pkg) {
  try {
    const file = path.join(ROOT, 'node_modules', pkg, 'package.json')
    return JSON.parse(fs.readFileSync(file, 'utf8')).version.replace(/^v/, '')
  } catch {
    return null
  }
}

/** "ioredis 5.9.2, redlock 4.2.0, ..., dist-lock 3.0.0" (the peers that are installed). */
function versions() {
  return ['ioredis', 'redlock', 'redlock5', 'redis-semaphore']
    .map((p) => [p, version(p)])
    .filter(([, v]) => v)
    .map(([p, v]) => `${p === 'redlock5' ? 'redlock (5 beta)' : p} ${v}`)
    .concat([`dist-lock ${require('../package.json').version}`])
    .join(', ')
}

/** Which dist-lock was measured (the checkout at `root`, this one by default): the addon's hash and time, the commit, uncommitted changes. */
function distLockBuild(root = ROOT) {
  const parts = []
  const addon = fs.readdirSync(root).find((f) => /^dist-lock\..*\.node$/.test(f))
  if (addon) {
    const file = path.join(root, addon)
    const hash = require('node:crypto').createHash('sha256').update(fs.readFileSync(file)).digest('hex').slice(0, 12)
    parts.push(`addon ${addon} sha256 ${hash}… built ${fs.statSync(file).mtime.toISOString()}`)
  }
  try {
    const git = (...args) => execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    const dirty = git('status', '--porcelain', '--', 'src', 'index.js', 'lib', 'binding.js').length > 0
    parts.push(`commit ${git('rev-parse', '--short', 'HEAD')}${dirty ? ' with uncommitted changes to src/, index.js, lib/ or binding.js' : ''}`)
  } catch {
    // not a git checkout
  }
  return parts.join('; ')
}

const loadText = (l) => l.map((x) => x.toFixed(2)).join(' / ')

/** The machine; `loadBefore`: os.loadavg() at the start of the part measured. */
function machine(loadBefore) {
  return {
    cpu: os.cpus()[0].model,
    cores: os.cpus().length,
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    date: new Date().toISOString(),
    load: `${loadText(loadBefore)} at the start, ${loadText(os.loadavg())} at the end`,
  }
}

module.exports = { versions, distLockBuild, machine }
