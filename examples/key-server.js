// A key server: users publish their own public key; admins can remove
// anyone's. The deployer is the first admin.
const fs = System.files
const path = require('path')

exports.init = async () => {
  await fs.mkdir('/keys')
  await fs.writeFile('/admins.json', JSON.stringify([env.callerId]))
}

async function admins () {
  return fs.readFile('/admins.json', 'json')
}

function requireCaller () {
  if (!env.callerId) throw new Error('Sign in to use the key server')
  return env.callerId
}

function keyPath (user) {
  if (!/^[a-zA-Z0-9_-]+$/.test(user)) throw new Error('Invalid user name')
  return path.join('/keys', user)
}

exports.setKey = async (key) => {
  const user = requireCaller()
  if (typeof key !== 'string' || !key) throw new Error('The key must be a string')
  await fs.writeFile(keyPath(user), key)
}

exports.getKey = async (user) => fs.readFile(keyPath(user), 'utf8')

exports.listUsers = async () => fs.readdir('/keys')

exports.addAdmin = async (user) => {
  const list = await admins()
  if (!list.includes(requireCaller())) throw new Error('Only admins can add admins')
  if (!list.includes(user)) list.push(user)
  await fs.writeFile('/admins.json', JSON.stringify(list))
}

exports.removeKey = async (user) => {
  const list = await admins()
  if (!list.includes(requireCaller())) throw new Error('Only admins can remove keys')
  await fs.unlink(keyPath(user))
}
