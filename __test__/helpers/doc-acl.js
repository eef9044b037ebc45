'use strict'

// The least-privilege ACL lines of docs/security.md ("ACL users, passwords
// and databases"), read from the document itself so that the tests that
// create these users test the documentation too.

const fs = require('node:fs')
const path = require('node:path')

const DOC = path.join(__dirname, '..', '..', 'docs', 'security.md')

/** The paragraph that introduces each line, by mode. */
const LABELS = {
  single: /^\*\*Single server\*\*/,
  'sentinel-master': /^\*\*Sentinel\*\*/,
  sentinel: /^The Sentinels have users/,
  cluster: /^\*\*Cluster\*\*/,
}

/**
 * The `ACL SETUSER <user> <rules...>` line of docs/security.md for `mode` (single,
 * sentinel-master, sentinel or cluster): `{ user, rules, password }`, the
 * rules as `ACL SETUSER` takes them (one argument each), the password from
 * its `>` rule.
 */
function docAcl(mode) {
  const label = LABELS[mode]
  if (!label) throw new Error(`no such ACL mode: ${mode}`)
  const text = fs.readFileSync(DOC, 'utf8')
  const start = text.indexOf('## ACL users, passwords and databases')
  if (start < 0) throw new Error('docs/security.md has no "ACL users, passwords and databases" section')
  // To the next heading of the same level or above.
  const next = /\n#{1,2} /g
  next.lastIndex = start + 1
  const found = next.exec(text)
  const section = text.slice(start, found ? found.index : text.length)
  // Paragraphs and code blocks in order: a block belongs to the paragraph
  // before it that starts with its label.
  const parts = section.split(/\n```\n([\s\S]*?)\n```\n/)
  for (let i = 1; i < parts.length; i += 2) {
    const before = parts[i - 1].trim().split(/\n\n/).filter((p) => !/^ACL SETUSER/.test(p))
    let introduction = ''
    for (const paragraph of before) if (Object.values(LABELS).some((l) => l.test(paragraph))) introduction = paragraph
    if (!label.test(introduction)) continue
    const line = parts[i].trim()
    const [acl, setuser, user, ...rules] = line.split(/\s+/)
    if (acl !== 'ACL' || setuser !== 'SETUSER') throw new Error(`not an ACL SETUSER line: ${line}`)
    const password = rules.find((r) => r.startsWith('>'))
    return { user, rules, password: password && password.slice(1) }
  }
  throw new Error(`docs/security.md gives no ACL line for ${mode}`)
}

module.exports = { docAcl }
