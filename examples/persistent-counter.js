// A counter kept in the files archive, so that anyone can read it there.
const fs = System.files

exports.increment = async function () {
  let i = 0
  try {
    i = await fs.readFile('/counter', 'json')
  } catch (err) {
    if (err.name !== 'NotFoundError') throw err
  }
  i++
  await fs.writeFile('/counter', i)
  return i
}
