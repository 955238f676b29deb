// A subset of Node's assert module for backend scripts: ok, equal,
// notEqual, strictEqual, notStrictEqual, deepEqual, deepStrictEqual,
// notDeepStrictEqual, throws, rejects, fail. Failures throw an
// AssertionError.
'use strict'

class AssertionError extends Error {
  constructor (message, actual, expected, operator) {
    super(message)
    this.name = 'AssertionError'
    this.code = 'ERR_ASSERTION'
    this.actual = actual
    this.expected = expected
    this.operator = operator
  }
}

function fail (message, actual, expected, operator) {
  if (message instanceof Error) throw message
  throw new AssertionError(message || `${inspect(actual)} ${operator} ${inspect(expected)}`, actual, expected, operator)
}

function inspect (v) {
  try {
    return typeof v === 'string' ? JSON.stringify(v) : String(JSON.stringify(v) ?? v)
  } catch (e) {
    return String(v)
  }
}

function deepEqual (a, b, strict) {
  if (strict ? Object.is(a, b) : (a == b)) return true // eslint-disable-line eqeqeq
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (strict && Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime()
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k) || !deepEqual(a[k], b[k], strict)) return false
  }
  return true
}

function ok (value, message) {
  if (!value) fail(message || 'The expression evaluated to a falsy value', value, true, '==')
}

function matches (err, expected) {
  if (expected === undefined) return true
  if (typeof expected === 'function') {
    if (expected.prototype !== undefined && err instanceof expected) return true
    if (Error.isPrototypeOf(expected)) return false
    return expected(err) === true
  }
  if (expected instanceof RegExp) return expected.test(String(err && err.message))
  if (typeof expected === 'object') return Object.keys(expected).every((k) => deepEqual(err[k], expected[k], true))
  return false
}

const assert = function (value, message) { ok(value, message) }
Object.assign(assert, {
  AssertionError,
  ok,
  fail: (message) => fail(message || 'Failed', undefined, undefined, 'fail'),
  equal: (a, b, m) => { if (a != b) fail(m, a, b, '==') }, // eslint-disable-line eqeqeq
  notEqual: (a, b, m) => { if (a == b) fail(m, a, b, '!=') }, // eslint-disable-line eqeqeq
  strictEqual: (a, b, m) => { if (!Object.is(a, b)) fail(m, a, b, '===') },
  notStrictEqual: (a, b, m) => { if (Object.is(a, b)) fail(m, a, b, '!==') },
  deepEqual: (a, b, m) => { if (!deepEqual(a, b, false)) fail(m, a, b, 'deepEqual') },
  deepStrictEqual: (a, b, m) => { if (!deepEqual(a, b, true)) fail(m, a, b, 'deepStrictEqual') },
  notDeepStrictEqual: (a, b, m) => { if (deepEqual(a, b, true)) fail(m, a, b, 'notDeepStrictEqual') },
  throws (fn, expected, message) {
    try {
      fn()
    } catch (err) {
      if (!matches(err, expected)) throw err
      return
    }
    fail(message || 'Missing expected exception.', undefined, expected, 'throws')
  },
  async rejects (p, expected, message) {
    try {
      await (typeof p === 'function' ? p() : p)
    } catch (err) {
      if (!matches(err, expected)) throw err
      return
    }
    fail(message || 'Missing expected rejection.', undefined, expected, 'rejects')
  }
})
assert.strict = assert
module.exports = assert
