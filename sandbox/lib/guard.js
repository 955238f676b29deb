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
  const plainArray = host.plainArray
  const isArrayBuffer = host.isArrayBuffer
  const isRegExp = host.isRegExp
  const isStringObject = host.isStringObject

  const O = Object
  const defineProperty = O.defineProperty
  const getOwnPropertyDescriptor = O.getOwnPropertyDescriptor
  const getPrototypeOf = O.getPrototypeOf
  const setPrototypeOf = O.setPrototypeOf
  const ownKeys = Reflect.ownKeys
  const apply = Reflect.apply
  const construct = Reflect.construct
  const isArray = Array.isArray
  const ProxyCtor = Proxy
  const RangeErrorCtor = RangeError
  const TypeErrorCtor = TypeError
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
  const regexpProto = RegExp.prototype
  const symbolReplace = Symbol.replace
  const symbolIterator = Symbol.iterator
  const SyntaxErrorCtor = SyntaxError
  const arraySlice = Array.prototype.slice

  function rangeError (message) { return new RangeErrorCtor(message) }

  // list is an array of the guard's own: with no prototype, so that
  // setters a script puts on Object.prototype or Array.prototype for
  // indexes never see what the guard stores.
  function list () { return setPrototypeOf([], null) }

  // str is ToString(v); a string as it is (a template literal copies it).
  function str (v) { return typeof v === 'string' ? v : `${v}` }

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

  // stable returns what a built-in may walk in place of o, and its length,
  // read once. A built-in reads an array-like's length itself, after the
  // guard did: a getter (or a Proxy) could give the guard a small length
  // and the built-in a huge one. An Array's length is a data property that
  // nothing runs between the two reads to change, so an Array is walked as
  // it is; anything else through a view whose length is fixed, and whose
  // other properties are the object's.
  function stable (o) {
    if (o === null || o === undefined) return [o, 0]
    if (plainArray(o)) {
      const n = o.length
      checkList(n)
      return [o, n]
    }
    const obj = O(o)
    const n = lengthOf(obj)
    checkList(n)
    const view = new ProxyCtor(obj, {
      __proto__: null, // only this trap, whatever Object.prototype holds
      get (target, key) { return key === 'length' ? n : target[key] }
    })
    return [view, n]
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
  // arrayMethod guards a method that walks this.length in Go: the length
  // is checked and held still (stable), and a method that builds a new
  // array or fills holes is charged perElement bytes an element.
  function arrayMethod (name, perElement) {
    const original = arrayProto[name]
    if (typeof original !== 'function') return
    replace(arrayProto, name, {
      [name] (...args) {
        const st = stable(this)
        const target = st[0]
        const n = st[1]
        chargeBytes(n * perElement)
        const r = apply(original, target, args)
        return r === target && target !== this ? O(this) : r
      }
    }[name])
  }
  const walks = ['copyWithin', 'every', 'filter', 'find', 'findIndex', 'findLast', 'findLastIndex',
    'forEach', 'includes', 'indexOf', 'lastIndexOf', 'reduce', 'reduceRight', 'reverse', 'shift',
    'some', 'unshift', 'entries', 'keys', 'values']
  for (let i = 0; i < walks.length; i++) arrayMethod(walks[i], 0)
  const builds = ['fill', 'map', 'slice', 'splice', 'toReversed', 'toSpliced', 'with']
  for (let i = 0; i < builds.length; i++) arrayMethod(builds[i], 16)

  // sort sorts a copy the guard owns and writes it back, as the language
  // defines it: goja sorts the array in place, and a comparator that
  // shortens it made goja index past its end (a panic of the process).
  const arraySort = arrayProto.sort
  function sortedItems (target, n, comparefn, holes) {
    chargeBytes(n * 32)
    const items = list()
    for (let i = 0; i < n; i++) {
      if (holes || i in target) items[items.length] = target[i]
    }
    apply(arraySort, items, [comparefn])
    return items
  }
  replace(arrayProto, 'sort', {
    sort (comparefn) {
      if (comparefn !== undefined && typeof comparefn !== 'function') return apply(arraySort, [], [comparefn])
      const o = O(this)
      const st = stable(o)
      const target = st[0]
      const n = st[1]
      const items = sortedItems(target, n, comparefn, false)
      let i = 0
      for (; i < items.length; i++) o[i] = items[i]
      for (; i < n; i++) delete o[i]
      return o
    }
  }.sort)
  if (typeof arrayProto.toSorted === 'function') {
    replace(arrayProto, 'toSorted', {
      toSorted (comparefn) {
        if (comparefn !== undefined && typeof comparefn !== 'function') return apply(arraySort, [], [comparefn])
        const st = stable(O(this))
        const target = st[0]
        const n = st[1]
        return setPrototypeOf(sortedItems(target, n, comparefn, true), arrayProto)
      }
    }.toSorted)
  }
  // Array.prototype[Symbol.iterator] is the same function as values.
  if (getOwnPropertyDescriptor(arrayProto, Symbol.iterator)) {
    defineProperty(arrayProto, Symbol.iterator, { value: arrayProto.values, writable: true, enumerable: false, configurable: true })
  }
  // concat is built here: whether an item spreads (its
  // Symbol.isConcatSpreadable), its length and its elements are each read
  // once, where goja would read them again after the guard.
  const isConcatSpreadable = Symbol.isConcatSpreadable
  replace(arrayProto, 'concat', {
    concat (...items) {
      const o = O(this)
      const out = list()
      let n = 0
      for (let i = -1; i < items.length; i++) {
        const e = i < 0 ? o : items[i]
        let spread = false
        if (e !== null && (typeof e === 'object' || typeof e === 'function')) {
          const flag = e[isConcatSpreadable]
          spread = flag === undefined ? isArray(e) : !!flag
        }
        if (!spread) {
          checkList(n + 1)
          out[n++] = e
          continue
        }
        const st = stable(e)
        const view = st[0]
        const m = st[1]
        checkList(n + m)
        chargeBytes(m * 16)
        for (let k = 0; k < m; k++, n++) {
          if (k in view) out[n] = view[k]
        }
      }
      out.length = n
      return setPrototypeOf(out, arrayProto)
    }
  }.concat)
  method(arrayProto, 'push', function (self, args) { checkList(lengthOf(self) + args.length) })

  // flat and flatMap are built here, reading each element once: the
  // result can be far longer than what exists (one array referenced many
  // times), and goja would read the elements again after any count the
  // guard made.
  function flatten (out, n, source, length, depth) {
    const stack = list()
    stack[0] = source
    stack[1] = length
    stack[2] = 0
    stack[3] = depth
    while (stack.length > 0) {
      const top = stack.length - 4
      const a = stack[top]
      const m = stack[top + 1]
      const d = stack[top + 3]
      let k = stack[top + 2]
      let descended = false
      for (; k < m; k++) {
        if (!(k in a)) continue
        const e = a[k]
        if (d >= 1 && isArray(e)) {
          if (stack.length / 4 >= MAX_DEPTH) throw rangeError('Array nested too deep to flatten')
          stack[top + 2] = k + 1
          const st = stable(e)
          const at = stack.length
          stack[at] = st[0]
          stack[at + 1] = st[1]
          stack[at + 2] = 0
          stack[at + 3] = d - 1
          descended = true
          break
        }
        checkList(n + 1)
        out[n++] = e
        if ((n & 0xffff) === 0) chargeBytes(SMALL * 16)
      }
      if (!descended) stack.length = top
    }
    return n
  }
  replace(arrayProto, 'flat', {
    flat (depth) {
      const st = stable(O(this))
      const d = depth === undefined ? 1 : NumberCtor(depth)
      const out = list()
      out.length = flatten(out, 0, st[0], st[1], d !== d ? 0 : d)
      return setPrototypeOf(out, arrayProto)
    }
  }.flat)
  replace(arrayProto, 'flatMap', {
    flatMap (callback, thisArg) {
      const o = O(this)
      const st = stable(o)
      const view = st[0]
      const m = st[1]
      if (typeof callback !== 'function') throw new TypeErrorCtor('flatMap: the callback is not a function')
      const out = list()
      let n = 0
      for (let k = 0; k < m; k++) {
        if (!(k in view)) continue
        const r = apply(callback, thisArg, [view[k], k, o])
        if (isArray(r)) {
          const rs = stable(r)
          n = flatten(out, n, rs[0], rs[1], 0)
        } else {
          checkList(n + 1)
          out[n++] = r
        }
      }
      out.length = n
      return setPrototypeOf(out, arrayProto)
    }
  }.flatMap)

  // join (and toString, which calls it) converts each element first, so
  // that the result's length is known before it is built: a short array
  // may hold one long string many times.
  function joinParts (self, sep, convert) {
    const o = O(self)
    const n = lengthOf(o)
    checkList(n)
    const parts = list()
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
      const sep = separator === undefined ? ',' : str(separator)
      return joinParts(this, sep, str)
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
    if (items !== null && items !== undefined && items[symbolIterator] === undefined) {
      const st = stable(items)
      const view = st[0]
      const n = st[1]
      args[0] = view
      chargeBytes(n * 16)
    }
  })

  // The array iterator's next, called from JavaScript, lets the budgets
  // stop a built-in that drains an iterator in Go (spread, Array.from,
  // new Set, Promise.all, ...), and each step is checked against the
  // list limit.
  // The same for the iterators of strings, Maps, Sets and matchAll.
  for (const it of [[][Symbol.iterator](), ''[Symbol.iterator](), new MapCtor()[Symbol.iterator](),
    new Set()[Symbol.iterator](), /x/g[Symbol.matchAll]('')]) {
    const proto = getPrototypeOf(it)
    const original = proto.next
    replace(proto, 'next', {
      next () { return apply(original, this, []) }
    }.next)
  }

  // --- Calls with argument lists --------------------------------------

  // checkArgs checks the argument list args[i] and holds its length
  // still.
  function checkArgs (args, i) {
    const list = args[i]
    if (list !== null && list !== undefined && typeof list === 'object') {
      const n = lengthOf(list)
      if (n > MAX_ARGS) throw rangeError('Too many arguments: ' + n + ' is more than the sandbox allows (' + MAX_ARGS + ')')
      if (!plainArray(list)) args[i] = stable(list)[0]
    }
  }
  method(Function.prototype, 'apply', function (_, args) { checkArgs(args, 1) })
  method(Reflect, 'apply', function (_, args) { checkArgs(args, 2) })
  method(Reflect, 'construct', function (_, args) { checkArgs(args, 1) })

  // --- Strings --------------------------------------------------------

  const stringProto = String.prototype
  // stringMethod guards a String.prototype method: this is converted to a
  // string once, here, checked with the arguments, and handed on as that
  // string, so that a toString cannot answer the guard one string and
  // goja another. Numbers are converted once too, and handed on as
  // numbers.
  function stringMethod (name, check) {
    const original = stringProto[name]
    if (typeof original !== 'function') return
    replace(stringProto, name, {
      [name] (...args) {
        if (this === null || this === undefined) return apply(original, this, args)
        const s = str(this)
        check(s, args)
        return apply(original, s, args)
      }
    }[name])
  }
  stringMethod('repeat', function (s, args) {
    args[0] = NumberCtor(args[0])
    const n = s.length * toLength(args[0])
    checkString(n)
    chargeBytes(n * 2)
  })
  function checkPad (s, args) {
    args[0] = NumberCtor(args[0])
    const n = toLength(args[0])
    if (n > s.length) {
      checkString(n)
      chargeBytes(n * 2)
    }
  }
  stringMethod('padStart', checkPad)
  stringMethod('padEnd', checkPad)
  stringMethod('concat', function (s, args) {
    let n = s.length
    for (let i = 0; i < args.length; i++) {
      args[i] = str(args[i]) // converted once, here
      n += args[i].length
      checkString(n)
    }
    chargeBytes(n * 2)
  })
  // String.raw is built here: its parts may be long, and many.
  const stringRaw = String.raw
  replace(String, 'raw', {
    raw (template, ...substitutions) {
      if (template === null || template === undefined) return apply(stringRaw, String, [template])
      const st = stable(O(O(template).raw))
      const raw = st[0]
      const n = st[1]
      const parts = list()
      let total = 0
      for (let i = 0; i < n; i++) {
        const p = str(raw[i])
        total += p.length
        checkString(total)
        parts[parts.length] = p
        if (i + 1 < n && i < substitutions.length) {
          const q = str(substitutions[i])
          total += q.length
          checkString(total)
          parts[parts.length] = q
        }
      }
      chargeBytes(total * 2)
      return apply(arrayJoin, parts, [''])
    }
  }.raw)
  method(String, 'fromCharCode', function (_, args) { checkString(args.length) })
  method(String, 'fromCodePoint', function (_, args) { checkString(args.length * 2) })

  // A replacement string's $-patterns can make each match as long as the
  // whole subject ($` and $'), so a result can be quadratic in the
  // subject. When it could be long, the patterns are expanded by a
  // function instead: one call per match, which the budgets can stop.
  function substitution (replacement) {
    if (apply(stringIndexOf, replacement, ['$']) < 0) return () => replacement
    return function (...a) {
      // a: match, captures..., position, subject[, groups]
      let groups = a[a.length - 1]
      let k = a.length - 1
      if (typeof groups === 'string') { groups = undefined } else { k-- }
      const subject = a[k]
      const position = a[k - 1]
      const captures = apply(arraySlice, a, [1, k - 1])
      const match = a[0]
      const parts = list()
      let length = 0
      function add (p) {
        length += p.length
        checkString(length)
        parts[parts.length] = p
      }
      let from = 0
      for (let i = apply(stringIndexOf, replacement, ['$']); i >= 0 && i + 1 < replacement.length; i = apply(stringIndexOf, replacement, ['$', from])) {
        add(apply(stringSlice, replacement, [from, i]))
        const d = replacement[i + 1]
        from = i + 2
        if (d === '$') {
          add('$')
        } else if (d === '&') {
          add(match)
        } else if (d === '`') {
          add(apply(stringSlice, subject, [0, position]))
        } else if (d === "'") {
          add(apply(stringSlice, subject, [position + match.length]))
        } else if (d >= '0' && d <= '9') {
          const two = replacement[i + 2]
          let n = NumberCtor(d)
          if (two >= '0' && two <= '9' && n * 10 + NumberCtor(two) >= 1 && n * 10 + NumberCtor(two) <= captures.length) {
            n = n * 10 + NumberCtor(two)
            from = i + 3
          }
          if (n >= 1 && n <= captures.length) {
            const cap = captures[n - 1]
            add(cap === undefined ? '' : cap)
          } else {
            add('$')
            from = i + 1
          }
        } else if (d === '<' && groups !== undefined) {
          const end = apply(stringIndexOf, replacement, ['>', i + 2])
          if (end < 0) {
            add('$')
            from = i + 1
          } else {
            const v = groups[apply(stringSlice, replacement, [i + 2, end])]
            add(v === undefined ? '' : str(v))
            from = end + 1
          }
        } else {
          add('$')
          from = i + 1
        }
      }
      add(apply(stringSlice, replacement, [from]))
      return apply(arrayJoin, parts, [''])
    }
  }
  // mayGrow reports whether replacing in subject with the replacement
  // string could give a long result: every position may match (an empty
  // pattern), and each $-pattern may stand for the whole subject.
  function mayGrow (subject, replacement) {
    let refs = 0
    for (let i = apply(stringIndexOf, replacement, ['$']); i >= 0; i = apply(stringIndexOf, replacement, ['$', i + 1])) refs++
    const s = subject.length
    return (s + 1) * (replacement.length + refs * s) > (1 << 20)
  }
  // bounded is the replacement to hand the built-in: a string that cannot
  // make a long result, as it is; otherwise a function, called once a
  // match (where the budgets can stop the call), that adds up the result's
  // length as it grows. The built-in assembles the result in Go.
  function bounded (subject, replacement) {
    let fn = replacement
    if (typeof replacement !== 'function') {
      const r = str(replacement)
      if (!mayGrow(subject, r)) return r
      fn = substitution(r)
    }
    let total = subject.length
    return function (...a) {
      const v = str(apply(fn, undefined, a))
      total += v.length
      checkString(total)
      chargeBytes(v.length * 2)
      return v
    }
  }
  function guardReplace (name) {
    const original = stringProto[name]
    if (typeof original !== 'function') return
    replace(stringProto, name, {
      [name] (pattern, replacement) {
        if (this === null || this === undefined) return apply(original, this, [pattern, replacement])
        const subject = str(this)
        return apply(original, subject, [pattern, bounded(subject, replacement)])
      }
    }[name])
  }
  guardReplace('replace')
  guardReplace('replaceAll')
  const regexpReplace = regexpProto[symbolReplace]
  replace(regexpProto, symbolReplace, {
    [symbolReplace] (string, replacement) {
      const subject = str(string)
      return apply(regexpReplace, this, [subject, bounded(subject, replacement)])
    }
  }[symbolReplace])
  stringMethod('split', function (s, args) {
    if (args[1] !== undefined) args[1] = NumberCtor(args[1])
    const n = s.length
    if (n >= SMALL) chargeBytes(mathMin(n + 1, args[1] === undefined ? n + 1 : toLength(args[1])) * 48)
  })
  // Whole-string operations that are slow per character in Go, or expand.
  const MAX_TEXT = 1 << 21
  for (const name of ['normalize', 'localeCompare']) {
    stringMethod(name, function (s, args) {
      let other = ''
      if (name === 'localeCompare') {
        other = str(args[0])
        args[0] = other
      } else if (args[0] !== undefined) {
        args[0] = str(args[0])
      }
      if (s.length + other.length > MAX_TEXT) throw rangeError(name + ': string longer than the sandbox allows (' + MAX_TEXT + ')')
      chargeBytes((s.length + other.length) * 8)
    })
  }
  for (const name of ['toUpperCase', 'toLowerCase', 'toLocaleUpperCase', 'toLocaleLowerCase']) {
    stringMethod(name, function (s) { chargeBytes(s.length * 8) })
  }
  // Escaping writes up to nine characters for one.
  for (const name of ['encodeURI', 'encodeURIComponent', 'escape']) {
    const original = global[name]
    if (typeof original !== 'function') continue
    replace(global, name, {
      [name] (v) {
        const s = str(v)
        checkString(s.length * 9)
        chargeBytes(s.length * 18)
        return original(s)
      }
    }[name])
  }

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
  // A pattern is compiled by recursive descent in Go, so its depth is
  // checked first, and only a string, converted here, or a RegExp (whose
  // source was checked when it was made) reaches the compiler: an object
  // could answer the guard one string and the compiler another.
  function checkPattern (p) {
    if (patternDepth(p) > MAX_DEPTH) throw new SyntaxErrorCtor('pattern nested deeper than ' + MAX_DEPTH)
    return p
  }
  const symbolMatch = Symbol.match
  constructorProxy('RegExp', function (args) {
    const p = args[0]
    if (isRegExp(p)) return
    if (p !== null && typeof p === 'object' && p[symbolMatch]) {
      // A pattern-like object: its source and flags, read once.
      args[0] = checkPattern(str(p.source))
      if (args[1] === undefined) args[1] = str(p.flags)
      return
    }
    if (p !== undefined) args[0] = checkPattern(str(p))
    if (args[1] !== undefined) args[1] = str(args[1])
  })
  const RegExpGuarded = global.RegExp
  delete regexpProto.compile // Annex B; it compiled past the guard
  // match, matchAll and search make a RegExp of anything that is not one,
  // inside goja: here, through the guarded constructor. Each reads the
  // argument's method once and calls it, as the language says.
  const symbolMatchAll = Symbol.matchAll
  const symbolSearch = Symbol.search
  for (const entry of [['match', symbolMatch, undefined], ['matchAll', symbolMatchAll, 'g'], ['search', symbolSearch, undefined]]) {
    const name = entry[0]
    const symbol = entry[1]
    const flags = entry[2]
    const original = stringProto[name]
    replace(stringProto, name, {
      [name] (regexp) {
        if (this === null || this === undefined) return apply(original, this, [regexp])
        if (regexp !== null && regexp !== undefined) {
          if (name === 'matchAll' && (typeof regexp === 'object' || typeof regexp === 'function') && regexp[symbolMatch]) {
            const f = regexp.flags
            if (f === null || f === undefined || apply(stringIndexOf, str(f), ['g']) < 0) {
              throw new TypeErrorCtor('matchAll: the RegExp must be global')
            }
          }
          const m = regexp[symbol]
          if (m !== null && m !== undefined) return apply(m, regexp, [str(this)])
        }
        const s = str(this)
        const rx = flags === undefined ? new RegExpGuarded(regexp === undefined ? undefined : str(regexp)) : new RegExpGuarded(str(regexp), flags)
        return rx[symbol](s)
      }
    }[name])
  }

  // --- Binary data ----------------------------------------------------

  const typedArrayProto = getPrototypeOf(Uint8Array.prototype)
  const typedArrayCtor = getPrototypeOf(Uint8Array)
  // The originals' getters, taken now: the script may redefine them.
  const typedArrayLength = getOwnPropertyDescriptor(typedArrayProto, 'length').get
  const isView = ArrayBuffer.isView
  function viewLength (o) { return apply(typedArrayLength, o, []) }

  constructorProxy('ArrayBuffer', function (args) {
    args[0] = NumberCtor(args[0])
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
      args[0] = NumberCtor(args[0])
      const n = toLength(args[0])
      if (n > MAX_BYTES) throw rangeError('Array buffer allocation failed')
      chargeBytes(n)
    })
  }
  const arrayBufferByteLength = getOwnPropertyDescriptor(ArrayBuffer.prototype, 'byteLength').get
  method(ArrayBuffer.prototype, 'slice', function (self) {
    if (isArrayBuffer(self)) chargeBytes(apply(arrayBufferByteLength, self, []))
  })
  const typedArrays = ['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
    'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'Float16Array']
  for (let i = 0; i < typedArrays.length; i++) {
    const name = typedArrays[i]
    const ctor = global[name]
    if (typeof ctor !== 'function') continue
    const size = ctor.BYTES_PER_ELEMENT
    constructorProxy(name, function (args) {
      const a = args[0]
      let n
      if (a === null || typeof a !== 'object') {
        args[0] = NumberCtor(a)
        n = toLength(args[0])
      } else if (isArrayBuffer(a)) {
        return // a view of memory that exists
      } else if (isView(a)) {
        n = viewLength(a)
      } else if (a[symbolIterator] === undefined) {
        const st = stable(a)
        const view = st[0]
        const m = st[1]
        args[0] = view
        n = m
      } else {
        return // an iterable, drained one step at a time through JavaScript
      }
      if (n * size > MAX_BYTES) throw rangeError('Array buffer allocation failed')
      chargeBytes(n * size)
    })
  }
  // %TypedArray%.from and .of construct through `this`, which is one of
  // the guarded constructors above (their originals are not reachable).
  method(typedArrayCtor, 'from', function (_, args) {
    const items = args[0]
    if (items !== null && items !== undefined && !isView(items) && items[symbolIterator] === undefined) args[0] = stable(items)[0]
  })
  method(typedArrayProto, 'set', function (_, args) {
    const src = args[0]
    if (src !== null && typeof src === 'object' && !isView(src)) args[0] = stable(src)[0]
  })
  // A typed array sorts in Go, without a comparator out of the budgets'
  // reach: its length is bounded like a list's.
  for (const name of ['sort', 'toSorted']) {
    method(typedArrayProto, name, function (self) {
      if (isView(self)) checkList(viewLength(self))
    })
  }
  method(typedArrayProto, 'slice', function (self) {
    if (isView(self)) chargeBytes(viewLength(self) * 8)
  })
  // join on a typed array writes up to 25 characters an element.
  for (const name of ['join', 'toLocaleString']) {
    method(typedArrayProto, name, function (self, args) {
      if (!isView(self)) return
      if (name === 'join' && args[0] !== undefined) args[0] = str(args[0])
      const sep = args[0] === undefined ? 1 : str(args[0]).length
      const n = viewLength(self)
      checkString(n * (25 + sep))
      chargeBytes(n * (25 + sep) * 2)
    })
  }

  // Listing the keys of a typed array makes one string per element.
  function checkKeys (_, args) {
    for (let i = 0; i < args.length; i++) {
      const o = args[i]
      let n = 0
      if (typeof o === 'string' || isStringObject(o)) {
        n = o.length // one key an index of a string, too
      } else if (o !== null && typeof o === 'object' && isView(o) && !isArrayBuffer(o)) {
        try { n = viewLength(o) } catch (e) { continue }
      }
      checkList(n)
      chargeBytes(n * 48)
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
          length += v.length * 6 + 2 // an escape is up to six characters
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
      const s = str(text)
      if (jsonDepth(s) > MAX_DEPTH) throw new SyntaxErrorCtor('JSON.parse: text nested deeper than ' + MAX_DEPTH)
      chargeBytes(s.length * 8)
      return apply(parse, JSON, [s, reviver])
    }
  }.parse)

  // --- Code -----------------------------------------------------------

  // The parser recurses in Go for each nested bracket: code the script
  // builds at run time is checked for depth before it is compiled.
  function checkSource (args) {
    for (let i = 0; i < args.length; i++) {
      if (sourceDepth(str(args[i])) > MAX_DEPTH) throw new SyntaxErrorCtor('code nested deeper than ' + MAX_DEPTH)
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
