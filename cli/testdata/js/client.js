#!/usr/bin/env node
// Calls a NodeVMS backend with nodevms-client 2.0.0, as its users did:
//
//   node client.js URL METHOD [ARGS_JSON] [USER]
//
// prints {"backendInfo": ..., "result": ...} or {"error": message}.
'use strict'
const NodeVMSClient = require('nodevms-client')

async function main () {
  const [url, method, args, user] = process.argv.slice(2)
  const client = new NodeVMSClient()
  await client.connect(url, user ? { user } : {})
  let out
  try {
    out = { backendInfo: client.backendInfo, result: await client[method](...JSON.parse(args || '[]')) }
  } catch (err) {
    out = { backendInfo: client.backendInfo, error: err.message || String(err) }
  }
  client.close()
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(0))
}

main().catch((err) => { console.error(err); process.exit(1) })
