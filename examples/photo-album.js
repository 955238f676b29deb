// A photo album: each name can be taken once and only once (calls run one
// at a time, so there is no race between the check and the write).
const fs = System.files

exports.init = async function () {
  await fs.mkdir('/photos')
}

exports.addPhoto = async function (name, data, encoding) {
  const path = `/photos/${name}`
  if (await exists(path)) throw new Error('File already exists')
  await fs.writeFile(path, data, encoding || 'base64')
}

exports.listPhotos = async function () {
  return fs.readdir('/photos')
}

async function exists (path) {
  try {
    await fs.stat(path)
    return true
  } catch (err) {
    return false
  }
}
