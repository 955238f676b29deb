// A deterministic subset of Node's path module (POSIX only), for backend
// scripts: join, resolve (from "/"), normalize, dirname, basename, extname,
// relative, isAbsolute, sep, delimiter and posix.
'use strict'

function normalizeParts (parts, absolute) {
  const out = []
  for (const p of parts) {
    if (p === '' || p === '.') continue
    if (p === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop()
      else if (!absolute) out.push('..')
      continue
    }
    out.push(p)
  }
  return out
}

function assertPath (p) {
  if (typeof p !== 'string') throw new TypeError('The "path" argument must be of type string')
}

function normalize (p) {
  assertPath(p)
  if (p === '') return '.'
  const absolute = p[0] === '/'
  const trailing = p[p.length - 1] === '/'
  let out = normalizeParts(p.split('/'), absolute).join('/')
  if (!out && !absolute) out = '.'
  if (out && trailing) out += '/'
  return (absolute ? '/' : '') + out
}

function join (...parts) {
  parts.forEach(assertPath)
  const joined = parts.filter((p) => p !== '').join('/')
  return joined === '' ? '.' : normalize(joined)
}

function resolve (...parts) {
  let resolved = ''
  for (let i = parts.length - 1; i >= 0 && resolved[0] !== '/'; i--) {
    assertPath(parts[i])
    if (parts[i] !== '') resolved = parts[i] + '/' + resolved
  }
  // Scripts have no working directory: relative paths resolve from "/".
  if (resolved[0] !== '/') resolved = '/' + resolved
  const out = '/' + normalizeParts(resolved.split('/'), true).join('/')
  return out
}

function isAbsolute (p) {
  assertPath(p)
  return p.length > 0 && p[0] === '/'
}

function dirname (p) {
  assertPath(p)
  if (p === '') return '.'
  let end = p.length
  while (end > 1 && p[end - 1] === '/') end--
  const i = p.lastIndexOf('/', end - 1)
  if (i === -1) return '.'
  if (i === 0) return '/'
  let d = i
  while (d > 1 && p[d - 1] === '/') d--
  return p.slice(0, d)
}

function basename (p, ext) {
  assertPath(p)
  let end = p.length
  while (end > 0 && p[end - 1] === '/') end--
  let base = p.slice(p.lastIndexOf('/', end - 1) + 1, end)
  if (ext !== undefined && base.endsWith(ext) && base !== ext) base = base.slice(0, base.length - ext.length)
  return base
}

function extname (p) {
  const base = basename(p)
  const i = base.lastIndexOf('.')
  if (i <= 0) return ''
  return base.slice(i)
}

function relative (from, to) {
  const a = resolve(from).split('/').filter(Boolean)
  const b = resolve(to).split('/').filter(Boolean)
  let i = 0
  while (i < a.length && i < b.length && a[i] === b[i]) i++
  return a.slice(i).map(() => '..').concat(b.slice(i)).join('/')
}

const path = { sep: '/', delimiter: ':', normalize, join, resolve, isAbsolute, dirname, basename, extname, relative }
path.posix = path
module.exports = path
