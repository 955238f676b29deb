// A counter kept in memory: replaying the call log rebuilds it.
var i = 0
exports.increment = function () {
  i++
  return i
}
exports.get = function () {
  return i
}
