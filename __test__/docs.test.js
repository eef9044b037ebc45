'use strict'

// The documentation is tested: README.md and docs/*.md.
// - Every relative link resolves to a file of the repository, and every
//   `#anchor` (in the same file or another) to a heading there, with
//   GitHub's slugs.
// - Every code block marked `<!-- doctest -->` (an HTML comment on the line
//   before its fence, invisible on GitHub) runs in a child process of its
//   own, as a user would run it: `require('dist-lock')` and
//   `import ... from 'dist-lock'` resolve to this package, and the Redis URL
//   (the literal `redis://127.0.0.1:6379`, or `REDIS_URL`) points at a
//   redis-server this test started. The example fails the test if it exits
//   non-zero, is killed, prints an error on stderr, or does not end.

const { test, describe, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFile } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { startRedis } = require('./helpers/redis-server.js')
const { anchors, links, doctests } = require('./helpers/markdown.js')

const root = path.join(__dirname, '..')
// Generous: a busy machine, and some examples wait for a lock on purpose.
const EXAMPLE_MS = 60_000

/** README.md and docs/*.md, relative to the root. */
function docFiles() {
  const docs = fs.existsSync(path.join(root, 'docs'))
    ? fs.readdirSync(path.join(root, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)
    : []
  return ['README.md', ...docs]
}

const read = (file) => fs.readFileSync(path.join(root, file), 'utf8')

describe('links', () => {
  for (const file of docFiles()) {
    test(`every relative link and #anchor of ${file} resolves`, () => {
      const broken = []
      for (const { target, n } of links(read(file))) {
        if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue // https:, mailto:, ...
        const [pathPart, anchor] = target.split('#')
        const resolved = pathPart === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), pathPart))
        const absolute = path.join(root, resolved)
        if (!fs.existsSync(absolute)) {
          broken.push(`${file}:${n}: ${target}: no file ${resolved}`)
          continue
        }
        if (anchor === undefined) continue
        if (!resolved.endsWith('.md')) {
          broken.push(`${file}:${n}: ${target}: an anchor in a file that is not Markdown`)
          continue
        }
        if (!anchors(read(resolved)).has(decodeURIComponent(anchor))) {
          broken.push(`${file}:${n}: ${target}: ${resolved} has no heading #${anchor}`)
        }
      }
      assert.deepEqual(broken, [])
    })
  }

  test('the checker itself sees headings and catches a broken anchor', () => {
    const text = 'Title\n=====\n\n## `lock.extend(seconds[, callback])`\n\n### From 2.0.x (the 2.0.1)\n\n```\n# not a heading\n```\n'
    assert.deepEqual([...anchors(text)], ['title', 'lockextendseconds-callback', 'from-20x-the-201'])
    assert.deepEqual(links('[a](#x) `[b](#y)` [c](docs/api.md#z)').map((l) => l.target), ['#x', 'docs/api.md#z'])
  })
})

test('docs/performance.md quotes benchmark/RESULTS.md as it is, with its date', () => {
  const quoted = read('docs/performance.md')
  const results = read('benchmark/RESULTS.md').split('\n')
  const dates = [...quoted.matchAll(/\*\*(\d{4}-\d\d-\d\dT[\d:.]+Z)\*\*|scale-out part: (\d{4}-\d\d-\d\dT[\d:.]+Z)/g)].map((m) => m[1] || m[2])
  assert.equal(dates.length, 2, 'docs/performance.md names the dates of both parts of the run')
  for (const date of dates) assert.ok(results.some((l) => l.startsWith(`- Date: ${date};`)), `RESULTS.md is not the run of ${date}`)
  const lines = quoted.split('\n').filter((l) => l.startsWith('|') || l.startsWith('> '))
  assert.ok(lines.length >= 20, 'docs/performance.md quotes the tables')
  const missing = lines.filter((l) => !results.includes(l.startsWith('> ') ? l.slice(2) : l))
  assert.deepEqual(missing, [], 'lines of docs/performance.md that benchmark/RESULTS.md does not have (copy them again from it)')
})

describe('doctests', () => {
  let server
  let project
  before(async () => {
    server = await startRedis()
    // A project that depends on this package: node_modules/dist-lock links
    // here, so both require and import resolve it through its "exports".
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'dist-lock-doctest-'))
    fs.mkdirSync(path.join(project, 'node_modules'))
    fs.symlinkSync(root, path.join(project, 'node_modules', 'dist-lock'), 'dir')
    fs.writeFileSync(path.join(project, 'package.json'), '{ "name": "doctest-project", "private": true }\n')
  })
  after(async () => {
    if (server) await server.stop()
    if (project) fs.rmSync(project, { recursive: true, force: true })
  })

  const examples = docFiles().flatMap((file) => doctests(read(file)).map((block) => ({ file, ...block })))

  test('every JavaScript block is a doctest, or says why it is not', () => {
    const unmarked = []
    for (const file of docFiles()) {
      const lines = read(file).split('\n')
      lines.forEach((line, i) => {
        if (!/^```(js|javascript|mjs|cjs)\b/.test(line)) return
        const before = (lines[i - 1] || '').trim()
        if (before === '<!-- doctest -->' || /^<!-- not a doctest: .+ -->$/.test(before)) return
        unmarked.push(`${file}:${i + 1}`)
      })
    }
    assert.deepEqual(unmarked, [], 'mark them <!-- doctest --> or <!-- not a doctest: why -->')
  })

  test('there are doctests in the README and in docs/', () => {
    assert.ok(examples.some((e) => e.file === 'README.md'), 'no doctest in README.md')
    assert.ok(examples.some((e) => e.file.startsWith('docs/')), 'no doctest in docs/')
    for (const e of examples) assert.match(e.lang, /^(js|javascript|mjs)$/, `${e.file}:${e.n}: a doctest must be JavaScript`)
  })

  for (const example of examples) {
    test(`${example.file}:${example.n} runs`, async () => {
      const program = example.code.replace(/redis:\/\/(?:127\.0\.0\.1|localhost):6379(?=[/'"`\s])/g, server.url)
      assert.ok(!/:6379\b/.test(program), `the example still names port 6379:\n${program}`)
      const esm = example.lang === 'mjs' || /^\s*(import|export)\s/m.test(program)
      const file = path.join(project, `example-${path.basename(example.file, '.md')}-${example.n}.${esm ? 'mjs' : 'js'}`)
      fs.writeFileSync(file, program)
      const env = { ...process.env, REDIS_URL: server.url }
      delete env.NODE_TEST_CONTEXT
      const r = await new Promise((resolve) => {
        execFile(process.execPath, [file], { cwd: project, env, timeout: EXAMPLE_MS, killSignal: 'SIGKILL' }, (err, stdout, stderr) =>
          resolve({ code: err ? err.code : 0, signal: err ? err.signal : null, stdout, stderr }),
        )
      })
      const what = `${example.file}:${example.n} (code ${r.code}, signal ${r.signal})\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}\n--- program\n${program}`
      assert.equal(r.signal, null, `killed (did not end within ${EXAMPLE_MS} ms?): ${what}`)
      assert.equal(r.code, 0, what)
      assert.doesNotMatch(r.stderr, /error/i, what)
    })
  }
})
