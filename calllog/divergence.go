package calllog

import "fmt"

// Kinds of divergence.
const (
	// KindNondeterminism: the script behaved differently on replay in a
	// way that shows in the files it wrote (or in its oracle use): it used
	// something the log does not record.
	KindNondeterminism = "nondeterminism"
	// KindTampering: one logged field disagrees with a replay that agrees
	// on everything else (a result or error edited), or the published
	// archive disagrees with the log (files changed with no call to
	// explain them).
	KindTampering = "tampering"
	// KindInvalid: the log itself is not a log NodeVMS could have written.
	KindInvalid = "invalid log"
)

// Divergence is the first place where a replay disagrees with the log.
type Divergence struct {
	Block    uint64 // the log entry
	Method   string
	Field    string // "res", "err", "filesVersion", "filesRoot", "oracles", ...
	Logged   string
	Replayed string
	Kind     string
}

func (d *Divergence) Error() string {
	return fmt.Sprintf("call log entry %d (%s): %s differs: logged %s, replayed %s (%s)",
		d.Block, d.Method, d.Field, d.Logged, d.Replayed, d.Kind)
}
