#!/usr/bin/env node
// Writes the hypercore test vectors under <out>/hypercore/ from the pinned
// JavaScript reference (see package.json), from fixed seeds, so that the Go
// implementation can be held to them byte for byte.
//
//   npm ci && node generate-vectors.js ../testdata
//
// Every run writes the same bytes: keys come from fixed seeds, block contents
// from fixed patterns, and nothing depends on time or randomness.
'use strict'

const fs = require('fs')
const os = require('os')
const path = require('path')
const { createHash } = require('crypto')
const { promisify } = require('util')

const hypercore = require('hypercore')
const hypercoreLegacy = require('hypercore-legacy')
const hcrypto = require('hypercore-crypto')
const TreeIndex = require('hypercore/lib/tree-index')

const REFERENCE = 'hypercore@' + require('hypercore/package.json').version
const LEGACY_REFERENCE = 'hypercore@' + require('hypercore-legacy/package.json').version

// Files up to this size are stored whole (hex); larger ones by SHA-256.
const INLINE_LIMIT = 64 * 1024

// A block is written in the vectors as either a hex string or a pattern:
// {pattern: p, size: n} stands for n bytes where byte j is (p + 7j) mod 256.
function patternBlock (p, size) {
  const b = Buffer.alloc(size)
  for (let j = 0; j < size; j++) b[j] = (p + 7 * j) & 255
  return b
}

function blockBytes (spec) {
  if (typeof spec === 'string') return Buffer.from(spec, 'hex')
  return patternBlock(spec.pattern, spec.size)
}

const hex = (b) => Buffer.from(b).toString('hex')
const utf8 = (s) => Buffer.from(s).toString('hex')
const seedOf = (n) => Buffer.alloc(32, n)

function node (n) {
  return { index: n.index, hash: hex(n.hash), size: n.size }
}

function sizes (list) {
  return list.map((n, i) => ({ pattern: i & 255, size: n }))
}

const SCENARIOS = [
  { name: 'empty', seed: 1, batches: [] },
  { name: 'single', seed: 2, batches: [[utf8('hello')]] },
  {
    name: 'singles',
    seed: 3,
    batches: [0, 1, 2, 3, 5, 8, 13, 21, 34, 55].map((n, i) => [{ pattern: i, size: n }]),
    proofs: [0, 3, 6, 9]
  },
  {
    name: 'batch-shapes',
    seed: 4,
    batches: [
      [utf8('a')],
      [utf8('b'), utf8('c')],
      ['', '', ''],
      sizes([1, 2, 3, 4, 5]),
      [utf8('single')],
      [{ pattern: 9, size: 1024 }],
      sizes([10, 0, 10, 0, 10, 0, 10, 0]),
      sizes(new Array(17).fill(33)),
      [utf8('last')]
    ],
    proofs: [0, 1, 4, 7, 12, 20, 30, 38]
  },
  {
    name: 'big-block',
    seed: 5,
    batches: [[{ pattern: 5, size: 1 << 20 }], [utf8('after')]],
    proofs: [0, 1]
  },
  {
    name: 'batch-1000',
    seed: 6,
    batches: [sizes(new Array(1000).fill(100)), [utf8('one more')]],
    proofs: [0, 499, 999, 1000]
  },
  {
    // 20005 blocks span three bitfield pages: the index updates cross pages.
    name: 'pages',
    skipNodes: true, // 40009 nodes: the tree file's hash covers them
    seed: 7,
    batches: [...new Array(20).fill(null).map(() => sizes(new Array(1000).fill(3))), sizes([1, 1, 1, 1, 1])],
    proofs: [8191, 8192, 20004]
  },
  {
    name: 'json',
    seed: 8,
    valueEncoding: 'json',
    values: [[{ a: 1 }], ['str', [1, 2, 3]], [null, 3.5, { nested: { x: [true, false] }, 'ü': 'ünïcode' }], [1e21, -0, 1e-7, '\u2028']]
  },
  {
    name: 'legacy-3328',
    seed: 9,
    legacy: true,
    batches: [[utf8('old')], sizes([1, 2, 3]), sizes(new Array(100).fill(7))],
    proofs: [0, 50]
  }
]

// Replicas: blocks fetched one at a time from a source scenario into a sparse
// replica, with the digest the replica sends and the proof the source answers.
const REPLICAS = [
  { name: 'replica-sparse', source: 'batch-shapes', fetch: [5, 17, 3, 38, 0, 20, 21, 30, 12] },
  { name: 'replica-full', source: 'singles', fetch: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] },
  { name: 'replica-backwards', source: 'batch-1000', fetch: [1000, 999, 998, 500, 0, 1] }
]

async function readFiles (dir) {
  const files = {}
  for (const name of fs.readdirSync(dir).sort()) {
    const buf = fs.readFileSync(path.join(dir, name))
    files[name] = buf.length <= INLINE_LIMIT
      ? { size: buf.length, hex: hex(buf) }
      : { size: buf.length, sha256: createHash('sha256').update(buf).digest('hex') }
  }
  return files
}

function openFeed (lib, dir, scenario, keyPair) {
  const opts = { secretKey: keyPair.secretKey }
  if (scenario.valueEncoding) opts.valueEncoding = scenario.valueEncoding
  const feed = lib(dir, keyPair.publicKey, opts)
  return new Promise((resolve, reject) => {
    feed.on('error', reject)
    feed.ready((err) => err ? reject(err) : resolve(feed))
  })
}

async function state (feed) {
  const roots = feed.length ? await promisify(feed.rootHashes.bind(feed))(feed.length - 1) : []
  return {
    length: feed.length,
    byteLength: feed.byteLength,
    roots: roots.map(node),
    treeHash: hex(hcrypto.tree(roots)),
    signature: feed.length ? hex(await promisify(feed.signature.bind(feed))(feed.length - 1).then((s) => s.signature)) : ''
  }
}

async function allNodes (feed) {
  const out = []
  const getNode = promisify(feed._storage.getNode.bind(feed._storage))
  // Every node that exists: parents whose subtree is incomplete do not.
  for (let i = 0; feed.length && i <= 2 * (feed.length - 1); i++) {
    const n = await getNode(i).catch(() => null)
    if (n) out.push(node(n))
  }
  return out
}

async function proofOf (feed, index, digest, hash) {
  const p = await promisify(feed.proof.bind(feed))(index, { digest, hash, tree: new TreeIndex() })
  return { nodes: p.nodes.map(node), signature: p.signature ? hex(p.signature) : '' }
}

async function generateScenario (scenario, tmp) {
  const lib = scenario.legacy ? hypercoreLegacy : hypercore
  const keyPair = hcrypto.keyPair(seedOf(scenario.seed))
  const dir = path.join(tmp, scenario.name)
  const feed = await openFeed(lib, dir, scenario, keyPair)
  const append = promisify(feed.append.bind(feed))

  const out = {
    name: scenario.name,
    reference: scenario.legacy ? LEGACY_REFERENCE : REFERENCE,
    seed: hex(seedOf(scenario.seed)),
    publicKey: hex(keyPair.publicKey),
    secretKey: hex(keyPair.secretKey),
    discoveryKey: hex(hcrypto.discoveryKey(keyPair.publicKey)),
    batches: [],
    states: []
  }

  if (scenario.values) {
    out.valueEncoding = 'json'
    out.values = scenario.values
    for (const batch of scenario.values) {
      await append(batch)
      out.batches.push(batch.map((v) => hex(Buffer.from(JSON.stringify(v) + '\n'))))
      out.states.push(await state(feed))
    }
  } else {
    for (const batch of scenario.batches) {
      await append(batch.map(blockBytes))
      out.batches.push(batch)
      out.states.push(await state(feed))
    }
  }

  if (!scenario.skipNodes) out.nodes = await allNodes(feed)
  out.proofs = []
  for (const index of scenario.proofs || []) {
    // digest 0: the requester has nothing. Digests of requesters that hold
    // part of the tree are covered by the replica vectors.
    out.proofs.push({ index, digest: 0, hash: false, ...(await proofOf(feed, index, 0, false)) })
    out.proofs.push({ index, digest: 0, hash: true, ...(await proofOf(feed, index, 0, true)) })
  }

  await promisify(feed.close.bind(feed))()
  out.files = await readFiles(dir)
  return { out, feed, dir, keyPair }
}

async function generateReplica (spec, sources, tmp) {
  const source = sources[spec.source]
  const feed = await openFeed(hypercore, source.dir, {}, source.keyPair)
  const dir = path.join(tmp, spec.name)
  const replica = hypercore(dir, source.keyPair.publicKey, { sparse: true })
  await promisify(replica.ready.bind(replica))()
  const remoteTree = new TreeIndex() // what the source believes the replica has, as a peer keeps it

  const out = {
    name: spec.name,
    reference: REFERENCE,
    source: spec.source,
    publicKey: hex(source.keyPair.publicKey),
    puts: []
  }
  const getRaw = promisify(feed._storage.getData.bind(feed._storage))
  for (const index of spec.fetch) {
    const digest = replica.digest(index)
    const proof = await promisify(feed.proof.bind(feed))(index, { digest, hash: false, tree: remoteTree })
    const data = await getRaw(index)
    // Record the proof before put, which consumes proof.nodes.
    const put = { index, digest, nodes: proof.nodes.map(node), signature: proof.signature ? hex(proof.signature) : '' }
    await promisify(replica.put.bind(replica))(index, data, proof)
    put.lengthAfter = replica.length
    out.puts.push(put)
  }
  // Digests for blocks the replica does not have, and for ones it has.
  out.digests = []
  for (let i = 0; i < feed.length; i++) out.digests.push({ index: i, digest: replica.digest(i) })
  out.length = replica.length
  out.byteLength = replica.byteLength
  await promisify(replica.close.bind(replica))()
  await promisify(feed.close.bind(feed))()
  out.files = await readFiles(dir)
  return out
}

async function main () {
  const outDir = path.resolve(process.argv[2] || path.join(__dirname, '..', 'testdata'), 'hypercore')
  fs.mkdirSync(outDir, { recursive: true })
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hypercore-vectors-'))
  try {
    const sources = {}
    for (const scenario of SCENARIOS) {
      const result = await generateScenario(scenario, tmp)
      sources[scenario.name] = result
      write(outDir, result.out)
    }
    for (const spec of REPLICAS) write(outDir, await generateReplica(spec, sources, tmp))
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

function write (dir, vector) {
  const file = path.join(dir, vector.name + '.json')
  fs.writeFileSync(file, JSON.stringify(vector, null, 1) + '\n')
  console.log('wrote', path.relative(process.cwd(), file))
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
