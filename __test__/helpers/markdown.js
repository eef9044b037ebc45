'use strict'

// What the docs tests need to know of a Markdown file: its headings and
// their anchors (GitHub's slugs), its links, and its code blocks with the
// marker that makes one a doctest.

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(text) {
  return text
    .replace(/<[^>]*>/g, '')
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
    .replace(/\s/g, '-')
}

/** The lines of `text` outside fenced code blocks, with their numbers (1-based). */
function proseLines(text) {
  const lines = text.split('\n')
  const out = []
  let fence = null
  lines.forEach((line, i) => {
    const m = /^\s*(```+|~~~+)/.exec(line)
    if (m) {
      if (fence === null) fence = m[1]
      else if (line.trim().startsWith(fence)) fence = null
      return
    }
    if (fence === null) out.push({ line, n: i + 1 })
  })
  return out
}

/** The anchors of the headings of `text` (ATX and setext), duplicates numbered as GitHub does. */
function anchors(text) {
  const seen = new Map()
  const result = new Set()
  const add = (title) => {
    const base = slug(title)
    const count = seen.get(base) || 0
    seen.set(base, count + 1)
    result.add(count === 0 ? base : `${base}-${count}`)
  }
  const lines = proseLines(text)
  for (let i = 0; i < lines.length; i++) {
    const { line, n } = lines[i]
    const atx = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line)
    if (atx) {
      add(atx[1])
      continue
    }
    const next = lines[i + 1]
    if (next && next.n === n + 1 && /^(=+|-+)\s*$/.test(next.line) && line.trim() !== '' && !/^\s*[|>-]/.test(line)) {
      add(line)
      i++
    }
  }
  return result
}

/** The links of `text` outside code: `{ target, n }` for `[text](target)` (inline code removed first). */
function links(text) {
  const out = []
  for (const { line, n } of proseLines(text)) {
    const prose = line.replace(/`[^`]*`/g, '``')
    for (const m of prose.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push({ target: m[1], n })
  }
  // Links whose text spans two lines: `[...\n...](target)` is caught above by its `](`.
  return out
}

/**
 * The code blocks of `text` marked as doctests: a fenced block whose fence
 * line directly follows a line `<!-- doctest -->`. `{ lang, code, n }`.
 */
function doctests(text) {
  const lines = text.split('\n')
  const out = []
  for (let i = 0; i < lines.length; i++) {
    if (lines[i].trim() !== '<!-- doctest -->') continue
    const open = /^```(\w*)/.exec(lines[i + 1] || '')
    if (!open) throw new Error(`line ${i + 1}: <!-- doctest --> is not followed by a code block`)
    const end = lines.findIndex((l, j) => j > i + 1 && /^```\s*$/.test(l))
    if (end < 0) throw new Error(`line ${i + 2}: unterminated code block`)
    out.push({ lang: open[1], code: lines.slice(i + 2, end).join('\n') + '\n', n: i + 2 })
    i = end
  }
  return out
}

module.exports = { slug, anchors, links, doctests, proseLines }
