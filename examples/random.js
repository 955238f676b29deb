// Random numbers, audited: the host draws each with System.oracle, which
// records it in the call log, so that a replay gets the same number.
const fs = System.files

module.exports = async function () {
  const value = await System.oracle(() => Math.random())
  await fs.writeFile('/latest', String(value))
  return value
}
