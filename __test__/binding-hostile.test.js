'use strict'

// The generated binding (binding.js) called directly with hostile values,
// bypassing every check of index.js: wrong types, NaN, negative and huge
// numbers for u32 request ids, null, undefined, missing and extra arguments,
// a Proxy that throws on every property access, 10 MB strings, NUL bytes,
// wrong `this`, callbacks that throw. The native code must turn each into a
// JS exception or a request completed with an error (or accept it), never
// crash, abort or leave a request without completion.
//
// The cases run in a child process (this same file, with `--child`), so a
// crash shows as a signal or a non-zero exit. The child prints one JSON line
// per case { case, expected, outcome, threw, message } and exits 0 on its own.

const path = require('node:path')

const CHILD_FLAG = '--binding-hostile-child'

if (process.argv[2] === CHILD_FLAG) {
  runChild(process.argv[3], process.argv[4]).catch((err) => {
    console.error('child failed:', err)
    process.exitCode = 3
  })
} else {
  defineTests()
}

// ---------------------------------------------------------------------------
// The child
//
// The binding (see binding.d.ts): `new NativeLockManager(connection, options,
// onDone)`; requests `acquire(id, name, options, cancellable)`,
// `isLocked(id, name)`, `release(id, handle)`, `extend(id, handle, seconds)`,
// `isHeld(id, handle)` return at once and complete through
// `onDone(records, text)`, a batch of outcomes (lib/completions.js decodes
// it into `(id, error, value)`); `cancel(id)`, `setActive(bool)`,
// `remainingValidity(handle)`, `autoExtend(handle, onLost)`,
// `dropLock(handle)`, `close()` and the `options`/`closed` getters are
// synchronous.

async function runChild(url, deadUrl) {
  const { execFileSync } = require('node:child_process')
  const { NativeLockManager } = require(path.join(__dirname, '..', 'binding.js'))
  const { decodeCompletions } = require(path.join(__dirname, '..', 'lib', 'completions.js'))
  const CASE_BOUND_MS = 15_000

  const uncaught = []
  process.on('uncaughtException', (err) => uncaught.push(String(err && err.message)))

  const port = new URL(url).port
  const cli = (...args) => execFileSync('redis-cli', ['-p', port, ...args.map(String)], { encoding: 'utf8' }).trim()
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

  const proxy = new Proxy(
    {},
    {
      get(_, prop) {
        throw new Error(`proxy: get ${String(prop)}`)
      },
      has(_, prop) {
        throw new Error(`proxy: has ${String(prop)}`)
      },
      ownKeys() {
        throw new Error('proxy: ownKeys')
      },
      getOwnPropertyDescriptor(_, prop) {
        throw new Error(`proxy: getOwnPropertyDescriptor ${String(prop)}`)
      },
      getPrototypeOf() {
        throw new Error('proxy: getPrototypeOf')
      },
    },
  )
  const functionProxy = new Proxy(() => {}, {
    get(_, prop) {
      throw new Error(`function proxy: get ${String(prop)}`)
    },
  })
  const throwingGetter = {
    get ttl() {
      throw new Error('getter: ttl')
    },
  }
  const huge = 'x'.repeat(10 * 1024 * 1024) // 10 MB
  const hugeNul = `a\0${'\0b'.repeat(5 * 1024 * 1024)}` // 10 MB with NUL bytes
  const base = { url, connectTimeout: 1000, commandTimeout: 2000 }
  const quick = { ttl: 30_000, maxRetries: 0, retryDelay: 1, keyPrefix: 'hostile:' }
  const noop = () => {}

  // Managers with a dispatcher of completions, as index.js has: pending
  // requests by the id the native side reports (ToUint32 of the one given).
  const all = []
  const pendingOf = new WeakMap()
  const strays = []
  let onDoneHook = null
  function manager(connection = base, options = quick) {
    const pending = new Map()
    const m = new NativeLockManager(connection, options, (records, text) =>
      decodeCompletions(records, text, (id, err, value) => {
      const lock = typeof value === 'object' ? value : null
      const flag = typeof value === 'boolean' ? value : undefined
      if (onDoneHook) onDoneHook(m, id)
      const list = pending.get(id)
      if (!list) {
        strays.push(id)
        return
      }
      const resolve = list.shift()
      if (list.length === 0) pending.delete(id)
      if (pending.size === 0) m.setActive(false)
      resolve({ completion: true, err, lock, flag })
    }))
    pendingOf.set(m, pending)
    all.push(m)
    return m
  }
  let nextId = 1
  /** Starts request `start(id)` on `m`; a promise of its completion (rejects `sync` if the call threw). */
  function req(m, start, id = nextId++) {
    const pending = pendingOf.get(m)
    const key = typeof id === 'number' ? id >>> 0 : id
    return new Promise((resolve, reject) => {
      const list = pending.get(key) ?? []
      list.push(resolve)
      pending.set(key, list)
      if (pending.size === 1 && list.length === 1) m.setActive(true)
      try {
        start(id)
      } catch (err) {
        list.splice(list.indexOf(resolve), 1)
        if (list.length === 0) pending.delete(key)
        if (pending.size === 0) m.setActive(false)
        err.sync = true
        reject(err)
      }
    })
  }
  /** A granted lock's handle (throws if not granted). */
  async function grab(m, name, options = null) {
    const c = await req(m, (id) => m.acquire(id, name, options))
    if (c.err || !c.lock) throw new Error(`not acquired: ${c.err}`)
    return c.lock
  }

  const ctx = {}
  const ctor = (...args) => {
    const m = new NativeLockManager(...args)
    all.push(m)
    return m
  }

  /**
   * [name, fn, expected]. expected: 'throws' (synchronously), 'fails' (the
   * request completes with an error), 'completes' (without error), 'returns'
   * (a synchronous call returns), 'ok' (returns or completes), 'any'.
   */
  const cases = [
    // --- the constructor ---------------------------------------------------
    ['new NativeLockManager()', () => ctor(), 'throws'],
    ['new NativeLockManager(undefined × 3)', () => ctor(undefined, undefined, undefined), 'throws'],
    ['new NativeLockManager(null × 3)', () => ctor(null, null, null), 'throws'],
    ['onDone missing', () => ctor(base, quick), 'throws'],
    ['onDone: a string', () => ctor(base, quick, 'callback'), 'throws'],
    ['onDone: an object', () => ctor(base, quick, {}), 'throws'],
    ['onDone: a Proxy of a function whose traps throw', () => ctor(base, quick, functionProxy), 'any'],
    ['connection: a URL string instead of an object', () => ctor(url, {}, noop), 'throws'],
    ['connection: a number', () => ctor(5, {}, noop), 'throws'],
    ['connection: {} (url missing)', () => ctor({}, {}, noop), 'throws'],
    ['connection.url: a number', () => ctor({ url: 5 }, {}, noop), 'throws'],
    ['connection.url: an object', () => ctor({ url: {} }, {}, noop), 'throws'],
    ['connection.url: null', () => ctor({ url: null }, {}, noop), 'throws'],
    ['connection.url: a Symbol', () => ctor({ url: Symbol('u') }, {}, noop), 'throws'],
    ['connection.url: "not a url"', () => ctor({ url: 'not a url' }, {}, noop), 'throws'],
    ['connection.url: with a NUL byte', () => ctor({ url: 'redis://127.0.0.1\0:6379' }, {}, noop), 'throws'],
    ['connection.url: 10 MB host name', () => ctor({ url: `redis://${huge}` }, {}, noop), 'any'],
    ['connection.url: 10 MB of NUL bytes', () => ctor({ url: hugeNul }, {}, noop), 'throws'],
    ['connection: a throwing Proxy', () => ctor(proxy, {}, noop), 'throws'],
    ['options: a throwing Proxy', () => ctor(base, proxy, noop), 'throws'],
    ['options: a throwing getter', () => ctor(base, throwingGetter, noop), 'throws'],
    ['options: undefined', () => ctor(base, undefined, noop), 'throws'],
    ['options: an array', () => ctor(base, [], noop), 'any'],
    ['options: a function', () => ctor(base, () => {}, noop), 'any'],
    ['connection: Object.create(null) with url', () => ctor(Object.assign(Object.create(null), { url }), {}, noop), 'returns'],
    ['connectTimeout: "5"', () => ctor({ url, connectTimeout: '5' }, {}, noop), 'throws'],
    ['connectTimeout: NaN', () => ctor({ url, connectTimeout: NaN }, {}, noop), 'throws'],
    ['connectTimeout: -1', () => ctor({ url, connectTimeout: -1 }, {}, noop), 'throws'],
    ['connectTimeout: 10n (a BigInt)', () => ctor({ url, connectTimeout: 10n }, {}, noop), 'throws'],
    ['commandTimeout: 1e300', () => ctor({ url, commandTimeout: 1e300 }, {}, noop), 'throws'],
    ['ttl: "5"', () => ctor(base, { ttl: '5' }, noop), 'throws'],
    ['ttl: NaN', () => ctor(base, { ttl: NaN }, noop), 'throws'],
    ['ttl: -1', () => ctor(base, { ttl: -1 }, noop), 'throws'],
    ['ttl: 2^64', () => ctor(base, { ttl: 2 ** 64 }, noop), 'throws'],
    ['ttl: -0', () => ctor(base, { ttl: -0 }, noop), 'throws'],
    ['ttl: an object', () => ctor(base, { ttl: {} }, noop), 'throws'],
    ['maxRetries: -1e300', () => ctor(base, { maxRetries: -1e300 }, noop), 'throws'],
    ['retryDelay: Infinity', () => ctor(base, { retryDelay: Infinity }, noop), 'throws'],
    ['timeout: -Infinity', () => ctor(base, { timeout: -Infinity }, noop), 'throws'],
    ['fair: "yes"', () => ctor(base, { fair: 'yes' }, noop), 'throws'],
    ['keyPrefix: an object', () => ctor(base, { keyPrefix: {} }, noop), 'throws'],
    ['keyPrefix: 10 MB', () => ctor(base, { keyPrefix: huge }, noop), 'throws'],
    ['keyPrefix: with NUL bytes', () => ctor(base, { keyPrefix: 'a\0b:' }, noop), 'returns'],
    ['waitReplicas: a string', () => ctor(base, { waitReplicas: 'x' }, noop), 'throws'],
    ['waitReplicas: {}', () => ctor(base, { waitReplicas: {} }, noop), 'throws'],
    ['waitReplicas: count "1"', () => ctor(base, { waitReplicas: { count: '1', timeoutMs: 10 } }, noop), 'throws'],
    ['waitReplicas: a throwing Proxy', () => ctor(base, { waitReplicas: proxy }, noop), 'throws'],
    ['waitReplicas: count 2^53', () => ctor(base, { waitReplicas: { count: 2 ** 53, timeoutMs: 1 } }, noop), 'throws'],
    ['unknown fields are ignored', () => ctor({ ...base, zzz: 1 }, { zzz: 2 }, noop), 'returns'],
    ['extra constructor arguments', () => ctor(base, {}, noop, 1, 'two', {}), 'returns'],
    ['the constructor called without new', () => NativeLockManager(base, {}, noop), 'any'],

    // --- setActive, and requests with hostile ids ---------------------------
    ['setup: a manager', () => void (ctx.m = manager()), 'returns'],
    ['setActive()', () => ctx.m.setActive(), 'throws'],
    ['setActive("yes")', () => ctx.m.setActive('yes'), 'throws'],
    ['setActive(1)', () => ctx.m.setActive(1), 'throws'],
    ['setActive(true) twice, then false twice', () => {
      ctx.m.setActive(true)
      ctx.m.setActive(true)
      ctx.m.setActive(false)
      ctx.m.setActive(false)
    }, 'returns'],
    ['acquire()', () => ctx.m.acquire(), 'throws'],
    ['acquire(id) without a name', () => req(ctx.m, (id) => ctx.m.acquire(id)), 'throws'],
    ['acquire(id, {})', () => req(ctx.m, (id) => ctx.m.acquire(id, {})), 'throws'],
    ['acquire(id, 5)', () => req(ctx.m, (id) => ctx.m.acquire(id, 5)), 'throws'],
    ['acquire(id, null)', () => req(ctx.m, (id) => ctx.m.acquire(id, null)), 'throws'],
    ['acquire(id, Symbol)', () => req(ctx.m, (id) => ctx.m.acquire(id, Symbol('n'))), 'throws'],
    ['acquire(id, a throwing Proxy)', () => req(ctx.m, (id) => ctx.m.acquire(id, proxy)), 'throws'],
    ['acquire(id, "")', () => req(ctx.m, (id) => ctx.m.acquire(id, '')), 'fails'],
    ['acquire(id, 10 MB name)', () => req(ctx.m, (id) => ctx.m.acquire(id, huge)), 'fails'],
    ['acquire(id, 10 MB name with NUL bytes)', () => req(ctx.m, (id) => ctx.m.acquire(id, hugeNul)), 'fails'],
    ['acquire(id, "nul\\0name") (NUL bytes are binary-safe)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'nul\0name')), 'completes'],
    ['acquire(id, a lone surrogate)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'lone-\ud800')), 'any'],
    ['acquire(id, name, "a string")', () => req(ctx.m, (id) => ctx.m.acquire(id, 'opts-string', 'fast')), 'any'],
    ['acquire(id, name, 42)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'opts-number', 42)), 'any'],
    ['acquire(id, name, a throwing Proxy)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'opts-proxy', proxy)), 'throws'],
    ['acquire(id, name, a throwing getter)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'opts-getter', throwingGetter)), 'throws'],
    ['acquire(id, name, { keyPrefix })', () => req(ctx.m, (id) => ctx.m.acquire(id, 'kp', { keyPrefix: 'x:' })), 'fails'],
    ['acquire(id, name, { keyPrefix }, cancellable)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'kp2', { keyPrefix: 'x:' }, true)), 'fails'],
    ['acquire(id, name, { ttl: "a" })', () => req(ctx.m, (id) => ctx.m.acquire(id, 'ttl-a', { ttl: 'a' })), 'throws'],
    ['acquire(id, name, { ttl: NaN })', () => req(ctx.m, (id) => ctx.m.acquire(id, 'ttl-nan', { ttl: NaN })), 'fails'],
    ['acquire(id, name, { waitReplicas: timeoutMs 1e9 })', () => req(ctx.m, (id) => ctx.m.acquire(id, 'wr', { waitReplicas: { count: 1, timeoutMs: 1e9 } })), 'fails'],
    ['acquire(id, name, null, cancellable "yes")', () => req(ctx.m, (id) => ctx.m.acquire(id, 'canc', null, 'yes')), 'throws'],
    ['acquire(-1, name)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'rid-minus-1'), -1), 'any'],
    ['acquire(NaN, name)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'rid-nan'), NaN), 'any'],
    ['acquire(2^53, name)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'rid-2-53'), 2 ** 53), 'any'],
    ['acquire(2^32 + 5, name)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'rid-2-32'), 2 ** 32 + 5), 'any'],
    ['acquire(-Infinity, name)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'rid-inf'), -Infinity), 'any'],
    ['acquire("5", name)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'rid-string'), '5'), 'throws'],
    ['acquire({}, name)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'rid-object'), {}), 'throws'],
    ['acquire(5n, name)', () => req(ctx.m, (id) => ctx.m.acquire(id, 'rid-bigint'), 5n), 'throws'],
    ['acquire with extra arguments', () => req(ctx.m, (id) => ctx.m.acquire(id, 'extra', null, false, 1, 'two', {})), 'completes'],
    ['two requests with the same id both complete', async () => {
      const id = 31337
      const [a, b] = await Promise.all([
        req(ctx.m, (i) => ctx.m.isLocked(i, 'same-id-a'), id),
        req(ctx.m, (i) => ctx.m.isLocked(i, 'same-id-b'), id),
      ])
      if (a.err || b.err) throw new Error(`${a.err} ${b.err}`)
    }, 'completes'],

    // --- cancel -----------------------------------------------------------
    ['cancel a waiting cancellable acquire', async () => {
      const holder = await grab(ctx.m, 'contended')
      const id = nextId++
      const waiting = req(ctx.m, (i) => ctx.m.acquire(i, 'contended', { maxRetries: -1, retryDelay: 5 }, true), id)
      await sleep(50)
      ctx.m.cancel(id)
      ctx.m.cancel(id)
      const c = await waiting
      await req(ctx.m, (i) => ctx.m.release(i, holder.handle))
      return c
    }, 'fails'],
    ['cancel a waiting acquire that is not cancellable (no effect)', async () => {
      const holder = await grab(ctx.m, 'contended-2')
      const id = nextId++
      const waiting = req(ctx.m, (i) => ctx.m.acquire(i, 'contended-2', { maxRetries: 10, retryDelay: 10 }), id)
      await sleep(30)
      ctx.m.cancel(id)
      const c = await waiting
      await req(ctx.m, (i) => ctx.m.release(i, holder.handle))
      return c
    }, 'completes'],
    ['cancel()', () => ctx.m.cancel(), 'throws'],
    ['cancel(-1)', () => ctx.m.cancel(-1), 'returns'],
    ['cancel(NaN)', () => ctx.m.cancel(NaN), 'returns'],
    ['cancel("x")', () => ctx.m.cancel('x'), 'throws'],
    ['cancel({})', () => ctx.m.cancel({}), 'throws'],
    ['cancel(a throwing Proxy)', () => ctx.m.cancel(proxy), 'throws'],

    // --- isLocked -----------------------------------------------------------
    ['isLocked()', () => ctx.m.isLocked(), 'throws'],
    ['isLocked(id) without a name', () => req(ctx.m, (id) => ctx.m.isLocked(id)), 'throws'],
    ['isLocked(id, {})', () => req(ctx.m, (id) => ctx.m.isLocked(id, {})), 'throws'],
    ['isLocked(id, "")', () => req(ctx.m, (id) => ctx.m.isLocked(id, '')), 'fails'],
    ['isLocked(id, 10 MB)', () => req(ctx.m, (id) => ctx.m.isLocked(id, huge)), 'fails'],
    ['isLocked(id, "\\0")', () => req(ctx.m, (id) => ctx.m.isLocked(id, '\0')), 'completes'],

    // --- lock handles -----------------------------------------------------
    ['setup: a lock', async () => {
      ctx.lock = await grab(ctx.m, 'the-lock')
    }, 'completes'],
    ['release(id) without a handle', () => req(ctx.m, (id) => ctx.m.release(id)), 'throws'],
    ['release(id, "x")', () => req(ctx.m, (id) => ctx.m.release(id, 'x')), 'throws'],
    ['release(id, an unknown handle)', () => req(ctx.m, (id) => ctx.m.release(id, 987654)), 'completes'],
    ['release(id, -1)', () => req(ctx.m, (id) => ctx.m.release(id, -1)), 'completes'],
    ['extend(id, handle) without seconds', () => req(ctx.m, (id) => ctx.m.extend(id, ctx.lock.handle)), 'throws'],
    ['extend(id, handle, "10")', () => req(ctx.m, (id) => ctx.m.extend(id, ctx.lock.handle, '10')), 'throws'],
    ['extend(id, handle, NaN)', () => req(ctx.m, (id) => ctx.m.extend(id, ctx.lock.handle, NaN)), 'fails'],
    ['extend(id, handle, -1)', () => req(ctx.m, (id) => ctx.m.extend(id, ctx.lock.handle, -1)), 'fails'],
    ['extend(id, handle, {})', () => req(ctx.m, (id) => ctx.m.extend(id, ctx.lock.handle, {})), 'throws'],
    ['extend(id, handle, a throwing Proxy)', () => req(ctx.m, (id) => ctx.m.extend(id, ctx.lock.handle, proxy)), 'throws'],
    ['extend(id, handle, 1e300)', () => req(ctx.m, (id) => ctx.m.extend(id, ctx.lock.handle, 1e300)), 'fails'],
    ['extend(id, handle, 10n)', () => req(ctx.m, (id) => ctx.m.extend(id, ctx.lock.handle, 10n)), 'throws'],
    ['extend(id, an unknown handle, 1)', () => req(ctx.m, (id) => ctx.m.extend(id, 987654, 1)), 'fails'],
    ['extend(id, handle, 5, extra arguments)', () => req(ctx.m, (id) => ctx.m.extend(id, ctx.lock.handle, 5, 'x', {})), 'completes'],
    ['isHeld(id, "x")', () => req(ctx.m, (id) => ctx.m.isHeld(id, 'x')), 'throws'],
    ['isHeld(id, an unknown handle)', () => req(ctx.m, (id) => ctx.m.isHeld(id, 987654)), 'completes'],
    ['remainingValidity()', () => ctx.m.remainingValidity(), 'throws'],
    ['remainingValidity("x")', () => ctx.m.remainingValidity('x'), 'throws'],
    ['remainingValidity(an unknown handle)', () => ctx.m.remainingValidity(987654), 'returns'],
    ['remainingValidity(handle, extra arguments)', () => ctx.m.remainingValidity(ctx.lock.handle, 1, 2), 'returns'],
    ['autoExtend(handle) without a callback', () => ctx.m.autoExtend(ctx.lock.handle), 'throws'],
    ['autoExtend(handle, "x")', () => ctx.m.autoExtend(ctx.lock.handle, 'x'), 'throws'],
    ['autoExtend(handle, a throwing Proxy)', () => ctx.m.autoExtend(ctx.lock.handle, proxy), 'throws'],
    ['autoExtend(an unknown handle, fn)', () => ctx.m.autoExtend(987654, noop), 'returns'],
    ['autoExtend with a callback that throws, twice, then the lock is lost', async () => {
      const lock = await grab(ctx.m, 'auto-lost', { ttl: 300 })
      ctx.m.autoExtend(lock.handle, () => {
        throw new Error('thrown by onLost')
      })
      ctx.m.autoExtend(lock.handle, noop) // a second time
      cli('DEL', lock.key)
      await sleep(800)
    }, 'completes'],
    ['dropLock()', () => ctx.m.dropLock(), 'throws'],
    ['dropLock("x")', () => ctx.m.dropLock('x'), 'throws'],
    ['dropLock(an unknown handle)', () => ctx.m.dropLock(987654), 'returns'],
    ['dropLock of a held, auto-extended lock, then release and extend it', async () => {
      const lock = await grab(ctx.m, 'dropped', { ttl: 600 })
      ctx.m.autoExtend(lock.handle, noop)
      ctx.m.dropLock(lock.handle)
      ctx.m.dropLock(lock.handle)
      const released = await req(ctx.m, (id) => ctx.m.release(id, lock.handle))
      if (released.err || released.flag !== false) throw new Error(`release of a dropped handle gave ${released.err} ${released.flag}`)
      return req(ctx.m, (id) => ctx.m.extend(id, lock.handle, 1))
    }, 'fails'],
    ['release the same handle twice at once, then extend it', async () => {
      const lock = await grab(ctx.m, 'twice')
      const both = await Promise.all([
        req(ctx.m, (id) => ctx.m.release(id, lock.handle)),
        req(ctx.m, (id) => ctx.m.release(id, lock.handle)),
      ])
      if (both.filter((c) => c.flag === true).length !== 1) throw new Error(`released ${JSON.stringify(both)}`)
      return req(ctx.m, (id) => ctx.m.extend(id, lock.handle, 1))
    }, 'fails'],

    // --- the completion callback --------------------------------------------
    ['an onDone callback that throws', async () => {
      const m = new NativeLockManager(base, quick, () => {
        throw new Error('thrown by onDone')
      })
      all.push(m)
      m.setActive(true)
      m.isLocked(1, 'x')
      await sleep(300)
      m.setActive(false)
    }, 'completes'],
    ['requests and close() from inside onDone', async () => {
      const m = manager()
      let reentered = 0
      onDoneHook = (mm) => {
        if (mm !== m || reentered++ > 0) return
        mm.isLocked(999_999, 'reentrant')
        mm.close()
        mm.isLocked(999_998, 'after-close')
      }
      try {
        return await req(m, (id) => m.isLocked(id, 'reenter'))
      } finally {
        await sleep(200)
        onDoneHook = null
        m.setActive(false)
      }
    }, 'completes'],

    // --- wrong this -----------------------------------------------------------
    ['acquire with a wrong this', () => NativeLockManager.prototype.acquire.call({}, 1, 'a'), 'throws'],
    ['release with this null', () => NativeLockManager.prototype.release.call(null, 1, 1), 'throws'],
    ['close with this undefined', () => NativeLockManager.prototype.close.call(undefined), 'throws'],
    ['closed getter with a wrong this', () => Object.getOwnPropertyDescriptor(NativeLockManager.prototype, 'closed').get.call({}), 'throws'],
    ['options getter with a wrong this', () => Object.getOwnPropertyDescriptor(NativeLockManager.prototype, 'options').get.call(proxy), 'throws'],
    ['setActive with a wrong this', () => NativeLockManager.prototype.setActive.call(Object.create(NativeLockManager.prototype), true), 'throws'],

    // --- closed manager, unreachable server -----------------------------------
    ['setup: a manager with held and auto-extended locks and a waiting acquire, closed', async () => {
      const m = (ctx.closing = manager())
      ctx.heldBeforeClose = await grab(m, 'held-at-close')
      ctx.autoBeforeClose = await grab(m, 'auto-at-close', { ttl: 1000 })
      m.autoExtend(ctx.autoBeforeClose.handle, noop)
      const blocker = await grab(m, 'blocked')
      ctx.waiting = req(m, (id) => m.acquire(id, 'blocked', { maxRetries: -1 }, true))
      await sleep(50)
      m.close(1, 2, 3)
      m.close()
      void blocker
    }, 'completes'],
    ['the acquire waiting at close fails', () => ctx.waiting, 'fails'],
    ['acquire on a closed manager', () => req(ctx.closing, (id) => ctx.closing.acquire(id, 'a', null, true)), 'fails'],
    ['isLocked on a closed manager', () => req(ctx.closing, (id) => ctx.closing.isLocked(id, 'a')), 'fails'],
    ['extend on a closed manager', () => req(ctx.closing, (id) => ctx.closing.extend(id, ctx.heldBeforeClose.handle, 1)), 'fails'],
    ['release on a closed manager', () => req(ctx.closing, (id) => ctx.closing.release(id, ctx.heldBeforeClose.handle)), 'fails'],
    ['cancel, autoExtend, dropLock, remainingValidity on a closed manager', () => {
      ctx.closing.cancel(1)
      ctx.closing.autoExtend(ctx.heldBeforeClose.handle, noop)
      ctx.closing.remainingValidity(ctx.heldBeforeClose.handle)
      ctx.closing.dropLock(ctx.heldBeforeClose.handle)
    }, 'returns'],
    ['options and closed getters on a closed manager', () => [ctx.closing.options, ctx.closing.closed], 'returns'],
    ['acquire on a manager whose server does not listen', () => {
      const m = manager({ url: deadUrl, connectTimeout: 200 })
      return req(m, (id) => m.acquire(id, 'x'))
    }, 'fails'],
  ]

  const results = []
  for (const [name, fn, expected] of cases) {
    const t0 = Date.now()
    let outcome
    let message = ''
    try {
      const value = fn()
      if (value && typeof value.then === 'function') {
        let timer
        const bound = new Promise((resolve) => {
          timer = setTimeout(() => resolve({ hang: true }), CASE_BOUND_MS)
        })
        const settled = await Promise.race([value.then((v) => ({ v }), (err) => ({ err })), bound])
        clearTimeout(timer)
        if (settled.hang) outcome = 'hang'
        else if (settled.err !== undefined) {
          outcome = settled.err && settled.err.sync ? 'throws' : 'fails'
          message = String(settled.err && settled.err.message)
        } else if (settled.v && settled.v.completion && settled.v.err != null) {
          outcome = 'fails'
          message = String(settled.v.err)
        } else outcome = 'completes'
      } else {
        outcome = 'returns'
      }
    } catch (err) {
      outcome = 'throws'
      message = String(err && err.message)
    }
    const line = { case: name, expected, outcome, threw: outcome === 'throws' || outcome === 'fails', message: message.slice(0, 300), ms: Date.now() - t0 }
    results.push(line)
    console.log(JSON.stringify(line))
  }

  // The binding still works after all that.
  const fresh = manager()
  const lock = await grab(fresh, 'sanity')
  const held = await req(fresh, (id) => fresh.isHeld(id, lock.handle))
  const released = await req(fresh, (id) => fresh.release(id, lock.handle))
  const sanity = held.flag === true && released.flag === true
  for (const m of all) {
    try {
      m.setActive(false)
      m.close()
    } catch {}
  }
  console.log(JSON.stringify({ done: true, cases: results.length, sanity, uncaught }))
}

// ---------------------------------------------------------------------------
// The test

function defineTests() {
  const { test, before, after } = require('node:test')
  const assert = require('node:assert/strict')
  const { spawn } = require('node:child_process')
  const { startRedis, freePort } = require('./helpers/redis-server.js')

  let server
  let child

  before(async () => {
    server = await startRedis()
  })

  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await server.stop()
  })

  test('hostile values given straight to the native binding never crash the process', { timeout: 180_000 }, async (t) => {
    const deadUrl = `redis://127.0.0.1:${await freePort()}`
    child = spawn(process.execPath, [__filename, CHILD_FLAG, server.url, deadUrl], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    const { code, signal } = await new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 150_000)
      child.once('exit', (c, s) => {
        clearTimeout(timer)
        resolve({ code: c, signal: s })
      })
    })
    const tail = `\nstderr: ${stderr.slice(-3000)}\nlast lines: ${stdout.split('\n').slice(-4).join('\n')}`
    assert.equal(signal, null, `the child died of ${signal} (crash, abort or hang)${tail}`)
    assert.equal(code, 0, `the child exited with ${code}${tail}`)

    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l))
    const summary = lines.pop()
    assert.equal(summary.done, true, 'the child did not finish')
    const cases = lines
    assert.equal(cases.length, summary.cases)
    assert.ok(cases.length >= 40, `only ${cases.length} cases ran`)

    const problems = []
    for (const c of cases) {
      if (c.outcome === 'hang') problems.push(`${c.case}: did not settle within the bound`)
      const ok =
        c.expected === 'any' ||
        c.expected === c.outcome ||
        (c.expected === 'ok' && (c.outcome === 'returns' || c.outcome === 'completes'))
      if (!ok) problems.push(`${c.case}: expected ${c.expected}, got ${c.outcome} ${c.message}`)
      if (c.message.includes('panicked') || /\bpanic\b/i.test(c.message)) problems.push(`${c.case}: a Rust panic: ${c.message}`)
    }
    assert.deepEqual(problems, [])
    assert.equal(summary.sanity, true, 'the binding does not work any more after the hostile calls')
    // The only exceptions that may reach the top are those the callbacks threw.
    assert.deepEqual(summary.uncaught.sort(), ['thrown by onDone', 'thrown by onLost'])
    assert.doesNotMatch(stderr, /panicked|FATAL ERROR|Aborted|Segmentation/i)

    const count = (o) => cases.filter((c) => c.outcome === o).length
    t.diagnostic(
      `${cases.length} hostile cases: ${count('throws')} threw, ${count('fails')} failed through onDone, ` +
        `${count('returns')} returned, ${count('completes')} completed; child exit code ${code}`,
    )
  })
}
