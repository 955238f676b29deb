// The sandbox's guards on the runtime's native operations. goja runs a
// built-in such as Array.prototype.fill or String.prototype.repeat in Go,
// where neither the time budget nor the memory budget can stop it, so
// every built-in that loops or allocates in proportion to a number the
// script chooses is replaced here, before the script runs, by a function
// that checks that number first. This file is evaluated once per runtime
// and returns nothing; what it captures stays in its closure.
//
// Two kinds of refusal:
//   - a language limit (a string longer than MAX_STRING, a list longer than
//     MAX_LIST, ...) throws an ordinary RangeError. These limits are
//     constants, so the outcome is the same on every machine and a replay
//     reproduces it.
//   - host.charge(bytes) stops the call, uncatchably, when an allocation
//     would take the call past its memory budget. A stopped call leaves
//     no trace in the log.
(function (global, host) {
  'use strict'
  const MAX_STRING = host.maxString
  const MAX_LIST = host.maxList
  const MAX_ARGS = host.maxArgs
  const MAX_BYTES = host.maxBytes
  const MAX_DEPTH = host.maxDepth
  // Below this many bytes an allocation is not worth a call into Go: the
  // sampled budget covers it.
  const SMALL = 1 << 16
  const charge = host.charge
  const timed = host.timed
  const jsonDepth = host.jsonDepth
  const sourceDepth = host.sourceDepth
  const patternDepth = host.patternDepth

  const O = Object
  const defineProperty = O.defineProperty
  const getOwnPropertyDescriptor = O.getOwnPropertyDescriptor
  const getPrototypeOf = O.getPrototypeOf
  const setPrototypeOf = O.setPrototypeOf
  const ownKeys = Reflect.ownKeys
  const apply = Reflect.apply
  const construct = Reflect.construct
  const isArray = Array.isArray
  const RangeErrorCtor = RangeError
  const MapCtor = Map
  const mapGet = Map.prototype.get
  const mapSet = Map.prototype.set
  const StringCtor = String
  const NumberCtor = Number
  const mathMin = Math.min
  const mathFloor = Math.floor
  const arrayJoin = Array.prototype.join
  const stringIndexOf = String.prototype.indexOf
  const stringSlice = String.prototype.slice
  const stringCharCodeAt = String.prototype.charCodeAt
  const stringReplace = String.prototype.replace
  const regexpProto = RegExp.prototype
  const symbolReplace = Symbol.replace

  function rangeError (message) { return new RangeErrorCtor(message) }

  // toLength is ToLength(ToNumber(v)), for a length the script gave.
  function toLength (v) {
    const n = NumberCtor(v)
    if (!(n > 0)) return 0
    return n === Infinity ? 2 ** 53 - 1 : mathFloor(n)
  }

  // lengthOf is the length a generic Array method will walk: this.length,
  // read as the method would (a getter runs again when it does).
  function lengthOf (o) {
    if (o === null || o === undefined) return 0 // the method throws its own TypeError
    return toLength(O(o).length)
  }

  function checkList (n) {
    if (n > MAX_LIST) throw rangeError('Invalid array length: ' + n + ' is more than the sandbox allows (' + MAX_LIST + ')')
  }

  function checkString (n) {
    if (n > MAX_STRING) throw rangeError('Invalid string length')
  }

  // chargeBytes charges an allocation of n bytes to the call's budget.
  function chargeBytes (n) {
    if (n >= SMALL) charge(n)
  }

  // replace swaps obj[name] for guarded, keeping the property's
  // attributes, the function's name and its length.
  function replace (obj, name, guarded) {
    const d = getOwnPropertyDescriptor(obj, name)
    if (!d || typeof d.value !== 'function') return
    defineProperty(guarded, 'length', { value: d.value.length, configurable: true })
    defineProperty(obj, name, { value: guarded, writable: d.writable, enumerable: d.enumerable, configurable: d.configurable })
  }

  // method guards obj[name]: check(this, args) runs first, then the
  // original.
  function method (obj, name, check) {
    const original = obj[name]
    if (typeof original !== 'function') return
    const guarded = {
      [name] (...args) {
        check(this, args)
        return apply(original, this, args)
      }
    }[name]
    replace(obj, name, guarded)
  }

  // guardConstructor returns a constructor that runs check(args) and then
  // original, called or constructed (with new.target passed on, so that
  // subclasses work). It has original's prototype, so instanceof holds,
  // and original's static properties. The prototype's constructor
  // property is made to give it, so that the unguarded original is not
  // reachable.
  function guardConstructor (original, name, check) {
    const wrapper = {
      [name]: function (...args) {
        check(args)
        if (new.target === undefined) return apply(original, undefined, args)
        return construct(original, args, new.target === wrapper ? original : new.target)
      }
    }[name]
    const keys = ownKeys(original)
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]
      if (k === 'name' || k === 'length' || k === 'prototype') continue
      defineProperty(wrapper, k, getOwnPropertyDescriptor(original, k))
    }
    defineProperty(wrapper, 'length', { value: original.length, configurable: true })
    defineProperty(wrapper, 'prototype', { value: original.prototype, writable: false, enumerable: false, configurable: false })
    setPrototypeOf(wrapper, getPrototypeOf(original))
    const proto = original.prototype
    if (proto && getOwnPropertyDescriptor(proto, 'constructor')) {
      defineProperty(proto, 'constructor', { value: wrapper, writable: true, enumerable: false, configurable: true })
    }
    return wrapper
  }

  // constructorProxy guards the global constructor name.
  function constructorProxy (name, check) {
    const original = global[name]
    if (typeof original !== 'function') return
    defineProperty(global, name, { value: guardConstructor(original, name, check), writable: true, enumerable: false, configurable: true })
  }

  // --- Arrays ---------------------------------------------------------

  constructorProxy('Array', function (args) {
    if (args.length === 1 && typeof args[0] === 'number') {
      checkList(args[0])
      chargeBytes(args[0] * 16)
    }
  })

  const arrayProto = Array.prototype
  // Every method that walks this.length in Go. Those that build a new
  // array or fill holes are charged for it.
  const walks = ['copyWithin', 'every', 'filter', 'find', 'findIndex', 'findLast', 'findLastIndex',
    'forEach', 'includes', 'indexOf', 'lastIndexOf', 'reduce', 'reduceRight', 'reverse', 'shift',
    'some', 'unshift', 'entries', 'keys', 'values']
  for (let i = 0; i < walks.length; i++) {
    method(arrayProto, walks[i], function (self) { checkList(lengthOf(self)) })
  }
  const builds = ['fill', 'map', 'slice', 'sort', 'splice', 'toReversed', 'toSorted', 'toSpliced', 'with']
  for (let i = 0; i < builds.length; i++) {
    method(arrayProto, builds[i], function (self) {
      const n = lengthOf(self)
      checkList(n)
      chargeBytes(n * 16)
    })
  }
  // Array.prototype[Symbol.iterator] is the same function as values.
  if (getOwnPropertyDescriptor(arrayProto, Symbol.iterator)) {
    defineProperty(arrayProto, Symbol.iterator, { value: arrayProto.values, writable: true, enumerable: false, configurable: true })
  }
  method(arrayProto, 'concat', function (self, args) {
    let n = lengthOf(self)
    for (let i = 0; i < args.length; i++) {
      const a = args[i]
      n += (a !== null && typeof a === 'object') ? lengthOf(a) : 1
    }
    checkList(n)
    chargeBytes(n * 16)
  })
  method(arrayProto, 'push', function (self, args) { checkList(lengthOf(self) + args.length) })

  // flat's result can be far longer than what exists (one array
  // referenced many times), so it is counted before it is built.
  method(arrayProto, 'flat', function (self, args) {
    const depth = args[0] === undefined ? 1 : NumberCtor(args[0])
    let total = 0
    const stack = [[O(self), 0, depth]]
    while (stack.length > 0) {
      const [a, start, d] = stack[stack.length - 1]
      const n = lengthOf(a)
      checkList(n)
      let i = start
      for (; i < n; i++) {
        const e = a[i]
        if (d >= 1 && isArray(e)) {
          stack[stack.length - 1][1] = i + 1
          if (stack.length > MAX_DEPTH) throw rangeError('Array nested too deep to flatten')
          stack[stack.length] = [e, 0, d - 1]
          break
        }
        total++
        if (total > MAX_LIST) checkList(total)
      }
      if (i >= n) stack.length--
    }
    chargeBytes(total * 16)
  })
  // flatMap flattens what its callback returns by one level.
  const flatMap = arrayProto.flatMap
  if (typeof flatMap === 'function') {
    replace(arrayProto, 'flatMap', {
      flatMap (callback, thisArg) {
        checkList(lengthOf(this))
        if (typeof callback !== 'function') return apply(flatMap, this, [callback, thisArg])
        let total = 0
        return apply(flatMap, this, [function (...a) {
          const r = apply(callback, this, a)
          total += isArray(r) ? lengthOf(r) : 1
          checkList(total)
          return r
        }, thisArg])
      }
    }.flatMap)
  }

  // join (and toString, which calls it) converts each element first, so
  // that the result's length is known before it is built: a short array
  // may hold one long string many times.
  function joinParts (self, sep, convert) {
    const o = O(self)
    const n = lengthOf(o)
    checkList(n)
    const parts = []
    let total = n > 0 ? (n - 1) * sep.length : 0
    checkString(total)
    for (let i = 0; i < n; i++) {
      const e = o[i]
      const s = (e === undefined || e === null) ? '' : convert(e)
      total += s.length
      checkString(total)
      parts[i] = s
    }
    chargeBytes(total * 2)
    return apply(arrayJoin, parts, [sep])
  }
  replace(arrayProto, 'join', {
    join (separator) {
      if (this === null || this === undefined) return apply(arrayJoin, this, [separator])
      const sep = separator === undefined ? ',' : `${separator}`
      return joinParts(this, sep, e => typeof e === 'string' ? e : `${e}`)
    }
  }.join)
  const arrayToLocaleString = arrayProto.toLocaleString
  replace(arrayProto, 'toLocaleString', {
    toLocaleString () {
      if (this === null || this === undefined) return apply(arrayToLocaleString, this, [])
      return joinParts(this, ',', e => `${e.toLocaleString()}`)
    }
  }.toLocaleString)

  method(Array, 'from', function (_, args) {
    const items = args[0]
    if (items !== null && items !== undefined && items[Symbol.iterator] === undefined) {
      const n = lengthOf(items)
      checkList(n)
      chargeBytes(n * 16)
    }
  })

  // The array iterator's next, called from JavaScript, lets the budgets
  // stop a built-in that drains an iterator in Go (spread, Array.from,
  // new Set, Promise.all, ...), and each step is checked against the
  // list limit.
  const arrayIteratorProto = getPrototypeOf([][Symbol.iterator]())
  const arrayIteratorNext = arrayIteratorProto.next
  replace(arrayIteratorProto, 'next', {
    next () {
      const r = apply(arrayIteratorNext, this, [])
      return r
    }
  }.next)

  // --- Calls with argument lists --------------------------------------

  function checkArgs (list) {
    if (list !== null && list !== undefined && typeof list === 'object') {
      const n = lengthOf(list)
      if (n > MAX_ARGS) throw rangeError('Too many arguments: ' + n + ' is more than the sandbox allows (' + MAX_ARGS + ')')
    }
  }
  method(Function.prototype, 'apply', function (_, args) { checkArgs(args[1]) })
  method(Reflect, 'apply', function (_, args) { checkArgs(args[2]) })
  method(Reflect, 'construct', function (_, args) { checkArgs(args[1]) })

  // --- Strings --------------------------------------------------------

  const stringProto = String.prototype
  method(stringProto, 'repeat', function (self, args) {
    const n = `${self}`.length * toLength(args[0])
    checkString(n)
    chargeBytes(n * 2)
  })
  function checkPad (self, args) {
    const n = toLength(args[0])
    if (n > `${self}`.length) {
      checkString(n)
      chargeBytes(n * 2)
    }
  }
  method(stringProto, 'padStart', checkPad)
  method(stringProto, 'padEnd', checkPad)
  method(stringProto, 'concat', function (self, args) {
    let n = `${self}`.length
    for (let i = 0; i < args.length; i++) {
      args[i] = `${args[i]}` // converted once, here
      n += args[i].length
      checkString(n)
    }
    chargeBytes(n * 2)
  })
  method(String, 'raw', function (_, args) {
    const t = args[0]
    if (t !== null && t !== undefined) checkList(lengthOf(O(t).raw))
  })
  method(String, 'fromCharCode', function (_, args) { checkString(args.length) })
  method(String, 'fromCodePoint', function (_, args) { checkString(args.length * 2) })

  // A replacement string's $-patterns can make each match as long as the
  // whole subject ($` and $'), so a result can be quadratic in the
  // subject. When it could be long, the patterns are expanded by a
  // function instead: one call per match, which the budgets can stop.
  function substitution (replacement) {
    return function (...a) {
      // a: match, captures..., position, subject[, groups]
      let groups = a[a.length - 1]
      let k = a.length - 1
      if (typeof groups === 'string') { groups = undefined } else { k-- }
      const subject = a[k]
      const position = a[k - 1]
      const captures = a.slice(1, k - 1)
      const match = a[0]
      let out = ''
      for (let i = 0; i < replacement.length; i++) {
        const c = apply(stringCharCodeAt, replacement, [i])
        if (c !== 36 || i + 1 >= replacement.length) { out += replacement[i]; continue }
        const d = replacement[i + 1]
        if (d === '$') { out += '$'; i++ } else if (d === '&') { out += match; i++ } else if (d === '`') {
          out += apply(stringSlice, subject, [0, position]); i++
        } else if (d === "'") {
          out += apply(stringSlice, subject, [position + match.length]); i++
        } else if (d >= '0' && d <= '9') {
          const two = replacement[i + 2]
          let n = NumberCtor(d)
          let used = 1
          if (two >= '0' && two <= '9' && n * 10 + NumberCtor(two) >= 1 && n * 10 + NumberCtor(two) <= captures.length) {
            n = n * 10 + NumberCtor(two)
            used = 2
          }
          if (n >= 1 && n <= captures.length) {
            const cap = captures[n - 1]
            out += cap === undefined ? '' : cap
            i += used
          } else {
            out += '$'
          }
        } else if (d === '<' && groups !== undefined) {
          const end = apply(stringIndexOf, replacement, ['>', i + 2])
          if (end < 0) { out += '$'; continue }
          const v = groups[apply(stringSlice, replacement, [i + 2, end])]
          out += v === undefined ? '' : `${v}`
          i = end
        } else {
          out += '$'
        }
        checkString(out.length)
      }
      return out
    }
  }
  function mayGrow (subject, replacement) {
    let refs = 0
    for (let i = apply(stringIndexOf, replacement, ['$']); i >= 0; i = apply(stringIndexOf, replacement, ['$', i + 1])) refs++
    if (refs === 0) return false
    const s = subject.length
    return (s + 1) * (replacement.length + refs * s) > (1 << 20)
  }
  function guardReplace (name) {
    const original = stringProto[name]
    if (typeof original !== 'function') return
    replace(stringProto, name, {
      [name] (pattern, replacement) {
        if (this !== null && this !== undefined && typeof replacement !== 'function') {
          const subject = `${this}`
          const r = `${replacement}`
          if (mayGrow(subject, r)) return apply(original, subject, [pattern, substitution(r)])
          return apply(original, subject, [pattern, r])
        }
        return apply(original, this, [pattern, replacement])
      }
    }[name])
  }
  guardReplace('replace')
  guardReplace('replaceAll')
  const regexpReplace = regexpProto[symbolReplace]
  replace(regexpProto, symbolReplace, {
    [symbolReplace] (string, replacement) {
      const subject = `${string}`
      if (typeof replacement !== 'function') {
        const r = `${replacement}`
        if (mayGrow(subject, r)) return apply(regexpReplace, this, [subject, substitution(r)])
        return apply(regexpReplace, this, [subject, r])
      }
      return apply(regexpReplace, this, [subject, replacement])
    }
  }[symbolReplace])
  method(stringProto, 'split', function (self, args) {
    if (self === null || self === undefined) return
    const n = `${self}`.length
    if (n >= SMALL) chargeBytes(mathMin(n + 1, args[1] === undefined ? n + 1 : toLength(args[1])) * 48)
  })

  // --- Regular expressions -------------------------------------------

  // Patterns that need backtracking run in a matcher that no budget can
  // interrupt; it gives up after a time limit and reports no match. timed
  // runs exec and test, through which every other use of a pattern goes
  // (String.prototype.match, replace, split, ... call exec once the
  // built-in one is replaced), and stops the call when one ran that long,
  // so a match cut short is never an outcome.
  for (const name of ['exec', 'test']) {
    const original = regexpProto[name]
    replace(regexpProto, name, {
      [name] (...args) { return timed(original, this, args) }
    }[name])
  }
  // The pattern is compiled by recursive descent in Go.
  constructorProxy('RegExp', function (args) {
    const p = args[0]
    if (typeof p === 'string' && patternDepth(p) > MAX_DEPTH) throw new SyntaxError('pattern nested deeper than ' + MAX_DEPTH)
  })

  // --- Binary data ----------------------------------------------------

  constructorProxy('ArrayBuffer', function (args) {
    const n = toLength(args[0])
    if (n > MAX_BYTES) throw rangeError('Array buffer allocation failed')
    chargeBytes(n)
    const o = args[1]
    if (o !== null && typeof o === 'object' && o.maxByteLength !== undefined) {
      const m = toLength(o.maxByteLength)
      if (m > MAX_BYTES) throw rangeError('Array buffer allocation failed')
      chargeBytes(m)
    }
  })
  for (const name of ['resize', 'transfer', 'transferToFixedLength']) {
    method(ArrayBuffer.prototype, name, function (_, args) {
      const n = toLength(args[0])
      if (n > MAX_BYTES) throw rangeError('Array buffer allocation failed')
      chargeBytes(n)
    })
  }
  const typedArrays = ['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
    'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'Float16Array']
  const typedArrayProto = getPrototypeOf(Uint8Array.prototype)
  const typedArrayCtor = getPrototypeOf(Uint8Array)
  for (let i = 0; i < typedArrays.length; i++) {
    const name = typedArrays[i]
    const ctor = global[name]
    if (typeof ctor !== 'function') continue
    const size = ctor.BYTES_PER_ELEMENT
    constructorProxy(name, function (args) {
      const a = args[0]
      let n
      if (a === null || typeof a !== 'object') {
        n = toLength(a)
      } else if (a instanceof ArrayBuffer) {
        return // a view of memory that exists
      } else {
        n = lengthOf(a) // an array-like (an iterable is drained through a checked iterator)
        checkList(n)
      }
      if (n * size > MAX_BYTES) throw rangeError('Array buffer allocation failed')
      chargeBytes(n * size)
    })
  }
  // %TypedArray%.from and .of construct through `this`, which is one of
  // the guarded constructors above (their originals are not reachable).
  method(typedArrayCtor, 'from', function (_, args) {
    const items = args[0]
    if (items !== null && items !== undefined && items[Symbol.iterator] === undefined) checkList(lengthOf(items))
  })
  // join on a typed array writes up to 25 characters an element.
  for (const name of ['join', 'toLocaleString']) {
    method(typedArrayProto, name, function (self, args) {
      const sep = args[0] === undefined ? 1 : `${args[0]}`.length
      let n = 0
      try { n = self.length } catch (e) { return }
      checkString(n * (25 + sep))
      chargeBytes(n * (25 + sep) * 2)
    })
  }

  // Listing the keys of a typed array makes one string per element.
  const isView = ArrayBuffer.isView
  function checkKeys (_, args) {
    for (let i = 0; i < args.length; i++) {
      const o = args[i]
      if (o !== null && typeof o === 'object' && isView(o)) {
        let n = 0
        try { n = toLength(o.length) } catch (e) { continue }
        checkList(n)
        chargeBytes(n * 48)
      }
    }
  }
  for (const name of ['keys', 'values', 'entries', 'getOwnPropertyNames', 'getOwnPropertyDescriptors', 'assign', 'fromEntries']) {
    method(O, name, checkKeys)
  }
  method(Reflect, 'ownKeys', checkKeys)

  // --- JSON -----------------------------------------------------------

  // JSON.stringify recurses in Go and checks for cycles against every
  // enclosing object: a deep value costs the square of its depth, out of
  // the budgets' reach. A replacer of the sandbox's own is called for
  // every value, so the budgets can stop a long stringify, and it limits
  // the depth and the output's length.
  const stringify = JSON.stringify
  replace(JSON, 'stringify', {
    stringify (value, replacer, space) {
      let user
      if (typeof replacer === 'function') {
        user = replacer
      } else if (replacer !== null && typeof replacer === 'object' && isArray(replacer)) {
        user = propertyList(replacer)
      }
      const depths = new MapCtor()
      let length = 0
      function guard (key, v) {
        if (user !== undefined) v = apply(user, this, [key, v])
        const d = (apply(mapGet, depths, [this]) || 0) + 1
        if (v !== null && typeof v === 'object') {
          if (d > MAX_DEPTH) throw rangeError('JSON.stringify: value nested deeper than ' + MAX_DEPTH)
          apply(mapSet, depths, [v, d])
          length += 2
        } else if (typeof v === 'string') {
          length += v.length + 2
        } else {
          length += 8
        }
        length += key.length + 2
        checkString(length)
        return v
      }
      const out = apply(stringify, JSON, [value, guard, space])
      if (out !== undefined) chargeBytes(out.length * 2)
      return out
    }
  }.stringify)

  // propertyList turns stringify's list of property names into the
  // replacer function that keeps those properties of each object, in the
  // list's order (an object's integer keys excepted, which come first).
  function propertyList (list) {
    const keys = []
    const seen = new MapCtor()
    const n = lengthOf(list)
    checkList(n)
    for (let i = 0; i < n; i++) {
      const e = list[i]
      let k
      if (typeof e === 'string') k = e
      else if (typeof e === 'number') k = `${e}`
      else if (e !== null && typeof e === 'object' && (e instanceof StringCtor || e instanceof NumberCtor)) k = `${e}`
      if (k !== undefined && !apply(mapGet, seen, [k])) {
        apply(mapSet, seen, [k, true])
        keys[keys.length] = k
      }
    }
    return function (key, v) {
      if (v === null || typeof v !== 'object' || isArray(v)) return v
      const kept = {}
      for (let i = 0; i < keys.length; i++) {
        const x = v[keys[i]]
        if (x !== undefined) kept[keys[i]] = x
      }
      return kept
    }
  }

  const parse = JSON.parse
  replace(JSON, 'parse', {
    parse (text, reviver) {
      const s = `${text}`
      if (jsonDepth(s) > MAX_DEPTH) throw new SyntaxError('JSON.parse: text nested deeper than ' + MAX_DEPTH)
      chargeBytes(s.length * 8)
      return apply(parse, JSON, [s, reviver])
    }
  }.parse)

  // --- Code -----------------------------------------------------------

  // The parser recurses in Go for each nested bracket: code the script
  // builds at run time is checked for depth before it is compiled.
  function checkSource (args) {
    for (let i = 0; i < args.length; i++) {
      if (sourceDepth(`${args[i]}`) > MAX_DEPTH) throw new SyntaxError('code nested deeper than ' + MAX_DEPTH)
    }
  }
  const evalOriginal = global.eval
  replace(global, 'eval', {
    eval (code) {
      if (typeof code === 'string') checkSource([code])
      return evalOriginal(code)
    }
  }.eval)
  constructorProxy('Function', checkSource)
  for (const f of [async function () {}, function * () {}]) {
    const ctor = getPrototypeOf(f).constructor
    guardConstructor(ctor, ctor.name, checkSource)
  }
})
