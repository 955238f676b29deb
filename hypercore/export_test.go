package hypercore

import "time"

// SetFlushEvery sets how often a signature flushes f's write-backs.
func SetFlushEvery(f *Feed, d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushEvery = d
}
