// A backend that, as real ones do, builds paths and sizes from what its
// callers send. The adversarial end-to-end test (adversarial_test.go) calls
// it with hostile arguments; the host must contain every call.
exports.ping = () => 'pong'

exports.mkdir = async (path) => {
  await System.files.mkdir(path)
  return true
}

exports.write = async (path, data) => {
  await System.files.writeFile(path, data)
  return true
}

// writeRepeat writes n copies of s: a size that comes from the caller.
exports.writeRepeat = async (path, s, n) => {
  await System.files.writeFile(path, s.repeat(n))
  return true
}

exports.read = async (path) => System.files.readFile(path, 'utf8')

exports.readdir = async (path) => System.files.readdir(path)

exports.arrayBuffer = (n) => new ArrayBuffer(n).byteLength

exports.fillArray = (n) => new Array(n).fill(0).length

exports.repeat = (s, n) => s.repeat(n).length

exports.nestedStringify = (depth) => {
  let a = []
  for (let i = 0; i < depth; i++) a = [a]
  return JSON.stringify(a).length
}

exports.regexTest = (source, s, n) => new RegExp(source).test(s.repeat(n) + 'b')

// keep holds n bytes in a global across calls.
exports.keep = (i, n) => {
  globalThis['m' + i] = new Uint8Array(n).fill(7)
  return i
}

exports.echoDepth = (v) => {
  let d = 0
  while (Array.isArray(v)) { v = v[0]; d++ }
  return d
}

exports.loop = () => { for (;;) {} }

exports.recurse = () => {
  const f = (n) => f(n + 1) + 1
  return f(0)
}

exports.never = () => new Promise(() => {})

exports.ticker = () => new Promise(() => { setInterval(() => {}, 1) })

exports.bigResult = (n) => 'x'.repeat(n)
