//go:build race

package core

// raceDetector: the race detector slows the sandbox about tenfold, which
// the tests that measure budgets against real speed cannot allow for.
const raceDetector = true
