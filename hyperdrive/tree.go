package hyperdrive

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nodevms/nodevms/hypercore"
)

// This file is the append-tree (append-tree 2.4, the index hyperdrive 9 keeps
// in its metadata feed), step for step as the reference does it: the entries
// it writes carry the same pointers, byte for byte, and lookups follow the
// pointers the same way, so that quirks of the reference (what a deletion
// leaves visible) are reproduced rather than corrected.

// entry is a decoded tree node with its seq (its block number).
type entry struct {
	seq   uint64
	name  string
	parts []string // split(name)
	node  treeNode
}

// noComponent stands, in a level's components, for an entry whose name
// has no component at that level; a real component never contains "/".
const noComponent = "/"

// level is one level of an entry's pointers: the seqs, and for each the
// component of its name at this level (what the walks compare), with an
// index by component built when a lookup in a long level needs one.
type level struct {
	seqs  []uint64
	comps []string

	scans  atomic.Int32
	once   sync.Once
	byComp map[string]int // first position of each component
}

// find returns the first position among the first n whose component is
// comp, or -1. A long level is indexed from its second search on: the
// level of a write's head is searched once, a level that lookups keep
// coming back to many times.
func (l *level) find(comp string, n int) int {
	if n <= 32 || l.scans.Add(1) <= 1 {
		for i := 0; i < n; i++ {
			if l.comps[i] == comp {
				return i
			}
		}
		return -1
	}
	l.once.Do(func() {
		l.byComp = make(map[string]int, len(l.comps))
		for i := len(l.comps) - 1; i >= 0; i-- {
			l.byComp[l.comps[i]] = i
		}
	})
	if i, ok := l.byComp[comp]; ok && i < n {
		return i
	}
	return -1
}

// componentOf is names[k], or noComponent past the end.
func componentOf(names []string, k int) string {
	if k < len(names) {
		return names[k]
	}
	return noComponent
}

// componentAt is an entry's component k, or noComponent.
func (e *entry) componentAt(k int) string { return componentOf(e.parts, k) }

// entries reads and caches the tree entries of a metadata feed. Names and
// values are kept for every entry read (a listing of n children touches n of
// them); pointers, which make up most of a big directory's entries, are kept
// decoded, with their components, for a bounded number of entries and read
// again when needed. It is shared by an archive and its checkouts.
type entries struct {
	feed *hypercore.Feed

	mu        sync.Mutex
	recent    []*entry // the entry with seq s, if cached, at s % len(recent)
	maxRecent int      // the size recent may grow to
	levels    map[uint64][]*level
	order     []uint64 // insertion order of levels, for eviction
}

const maxCachedLevels = 64

func newEntries(feed *hypercore.Feed) *entries {
	return &entries{feed: feed, levels: map[uint64][]*level{}, maxRecent: maxRecent}
}

// get returns entry seq (seq >= 1).
func (c *entries) get(seq uint64) (*entry, error) {
	c.mu.Lock()
	e := c.cachedLocked(seq)
	c.mu.Unlock()
	if e != nil {
		return e, nil
	}
	return c.read(seq)
}

// maxRecent bounds the entries kept decoded, so that an archive's memory
// does not grow with its history (a counter file rewritten a million
// times); older ones are read again when a walk needs them.
const maxRecent = 1 << 16

func (c *entries) cachedLocked(seq uint64) *entry {
	if n := uint64(len(c.recent)); n > 0 {
		if e := c.recent[seq%n]; e != nil && e.seq == seq {
			return e
		}
	}
	return nil
}

func (c *entries) read(seq uint64) (*entry, error) {
	if seq == 0 {
		return nil, fmt.Errorf("%w: entry pointer to the index block", ErrCorrupt)
	}
	b, err := c.feed.Get(seq)
	if err != nil {
		return nil, err
	}
	n, err := decodeTreeNode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, seq, err)
	}
	return c.add(seq, n), nil
}

// getAll returns the entries seqs, taking the lock once for those cached.
func (c *entries) getAll(seqs []uint64) ([]*entry, error) {
	out := make([]*entry, len(seqs))
	c.mu.Lock()
	for i, seq := range seqs {
		out[i] = c.cachedLocked(seq)
	}
	c.mu.Unlock()
	for i, seq := range seqs {
		if out[i] == nil {
			e, err := c.read(seq)
			if err != nil {
				return nil, err
			}
			out[i] = e
		}
	}
	return out, nil
}

// add caches an entry (without its pointers).
func (c *entries) add(seq uint64, n treeNode) *entry {
	n.Paths = nil
	n.Value = append([]byte(nil), n.Value...)
	e := &entry{seq: seq, name: n.Name, parts: split(n.Name), node: n}
	c.mu.Lock()
	if n := uint64(len(c.recent)); seq >= n && n < uint64(c.maxRecent) {
		// Grow by doubling (a run of appends stays linear), placing the
		// cached entries by their seq in the larger ring.
		grown := make([]*entry, min(uint64(c.maxRecent), max(64, 2*n, nextPow2(seq+1))))
		for _, old := range c.recent {
			if old != nil {
				grown[old.seq%uint64(len(grown))] = old
			}
		}
		c.recent = grown
	}
	c.recent[seq%uint64(len(c.recent))] = e
	c.mu.Unlock()
	return e
}

func nextPow2(n uint64) uint64 {
	p := uint64(1)
	for p < n {
		p <<= 1
	}
	return p
}

// levelsOf returns e's pointer levels.
func (c *entries) levelsOf(e *entry) ([]*level, error) {
	c.mu.Lock()
	l, ok := c.levels[e.seq]
	c.mu.Unlock()
	if ok {
		return l, nil
	}
	b, err := c.feed.Get(e.seq)
	if err != nil {
		return nil, err
	}
	n, err := decodeTreeNode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, e.seq, err)
	}
	raw, err := inflatePaths(e.seq, n.Paths)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, e.seq, err)
	}
	levels := make([]*level, len(raw))
	for k, seqs := range raw {
		for _, s := range seqs {
			// Entries point only back in time (and at themselves), which is
			// what makes every walk below finish.
			if s > e.seq || s == 0 {
				return nil, fmt.Errorf("%w: entry %d points at %d", ErrCorrupt, e.seq, s)
			}
		}
		list, err := c.getAll(seqs)
		if err != nil {
			return nil, err
		}
		lv := &level{seqs: seqs, comps: make([]string, len(seqs))}
		for i, x := range list {
			lv.comps[i] = x.componentAt(k)
		}
		levels[k] = lv
	}
	c.keepLevels(e.seq, levels)
	return levels, nil
}

// truncate forgets the entries from seq length on (taken back by a
// rollback; later entries with those seqs will be different ones).
func (c *entries) truncate(length uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, e := range c.recent {
		if e != nil && e.seq >= length {
			c.recent[i] = nil
		}
	}
	kept := c.order[:0]
	for _, seq := range c.order {
		if seq >= length {
			delete(c.levels, seq)
		} else {
			kept = append(kept, seq)
		}
	}
	c.order = kept
}

func (c *entries) keepLevels(seq uint64, levels []*level) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.levels[seq]; ok {
		return
	}
	if len(c.order) >= maxCachedLevels {
		delete(c.levels, c.order[0])
		c.order = c.order[1:]
	}
	c.levels[seq] = levels
	c.order = append(c.order, seq)
}

// tree is a view of the append-tree at one head: the latest entry, or a
// fixed version for a checkout.
type tree struct {
	entries *entries
	version int64 // the head's seq for a checkout; -1 for the latest
}

// head returns the entry the view starts from, or nil for an empty tree.
func (t *tree) head() (*entry, error) {
	seq := t.version
	if seq < 0 {
		seq = int64(t.entries.feed.Length()) - 1
	}
	if seq < 1 {
		return nil, nil
	}
	return t.entries.get(uint64(seq))
}

// emptyLevel is what a walk that finds nothing returns.
var emptyLevel = &level{}

// listAt returns the level that lists the children of names, as seen from
// e (the reference's _list): the seqs of the entries that stand for each
// child, with their components at len(names).
func (t *tree) listAt(e *entry, names []string) (*level, error) {
	for {
		levels, err := t.entries.levelsOf(e)
		if err != nil {
			return nil, err
		}
		cmp := compare(e.parts, names)
		if cmp >= len(levels) {
			return emptyLevel, nil
		}
		index := levels[cmp]
		if cmp == len(names) {
			return index, nil
		}
		if len(index.seqs) == 0 || (len(index.seqs) == 1 && index.seqs[0] == e.seq) {
			return emptyLevel, nil
		}
		// The child of the common prefix that leads towards names.
		i := index.find(names[cmp], len(index.seqs))
		if i < 0 {
			return emptyLevel, nil
		}
		next, err := t.entries.get(index.seqs[i])
		if err != nil {
			return nil, err
		}
		if next.seq >= e.seq {
			return nil, fmt.Errorf("%w: entry %d points at %d", ErrCorrupt, e.seq, next.seq)
		}
		e = next
	}
}

// lookup returns the entry for names (the reference's _get), which may be a
// deletion; ok is false when no entry has that name.
func (t *tree) lookup(names []string) (e *entry, ok bool, err error) {
	e, err = t.head()
	if err != nil || e == nil {
		return nil, false, err
	}
	for {
		cmp := compare(names, e.parts)
		if cmp == len(e.parts) && cmp == len(names) {
			return e, true, nil
		}
		levels, err := t.entries.levelsOf(e)
		if err != nil {
			return nil, false, err
		}
		if cmp >= len(levels) {
			return nil, false, nil
		}
		index := levels[cmp]
		n := len(index.seqs)
		if n > 0 && index.seqs[n-1] == e.seq {
			n--
		}
		target := componentOf(names, cmp)
		i := index.find(target, n)
		if i < 0 {
			return nil, false, nil
		}
		next, err := t.entries.get(index.seqs[i])
		if err != nil {
			return nil, false, err
		}
		if next.seq >= e.seq {
			return nil, false, fmt.Errorf("%w: entry %d points at %d", ErrCorrupt, e.seq, next.seq)
		}
		e = next
	}
}

// get returns the Stat stored under names; ok is false if there is none or
// the latest entry for it is a deletion.
func (t *tree) get(names []string) (st Stat, ok bool, err error) {
	e, found, err := t.lookup(names)
	if err != nil || !found || !e.node.HasValue {
		return Stat{}, false, err
	}
	st, err = decodeStat(e.node.Value)
	if err != nil {
		return Stat{}, false, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, e.seq, err)
	}
	return st, true, nil
}

// list returns the child names of names in the reference's order (oldest
// change first); ok is false when the tree has nothing at names.
func (t *tree) list(names []string) (children []string, ok bool, err error) {
	head, err := t.head()
	if err != nil || head == nil {
		return nil, false, err
	}
	lv, err := t.listAt(head, names)
	if err != nil || len(lv.seqs) == 0 {
		return nil, false, err
	}
	children = []string{}
	for _, c := range lv.comps {
		if c != noComponent {
			children = append(children, c)
		}
	}
	return children, true, nil
}

// errCheckout is returned by put and del on a checkout.
var errCheckout = fmt.Errorf("%w: cannot write to a checkout", ErrNotWritable)

// put returns the entry that records value under names, to be appended at
// seq (the reference's put), and keeps its levels for the walks to come.
func (t *tree) put(seq uint64, names []string, value []byte) (treeNode, error) {
	if t.version >= 0 {
		return treeNode{}, errCheckout
	}
	head, err := t.head()
	if err != nil {
		return treeNode{}, err
	}
	raw := make([][]uint64, 0, len(names)+1)
	levels := make([]*level, 0, len(names)+1)
	for i := 0; i <= len(names); i++ {
		target := componentOf(names, i)
		lv := &level{}
		if head != nil {
			list, err := t.listAt(head, names[:i])
			if err != nil {
				return treeNode{}, err
			}
			lv.seqs = make([]uint64, 0, len(list.seqs)+1)
			lv.comps = make([]string, 0, len(list.seqs)+1)
			for j, c := range list.comps {
				if c != target {
					lv.seqs = append(lv.seqs, list.seqs[j])
					lv.comps = append(lv.comps, c)
				}
			}
		}
		lv.seqs = append(lv.seqs, seq)
		lv.comps = append(lv.comps, target)
		raw = append(raw, lv.seqs)
		levels = append(levels, lv)
	}
	t.entries.keepLevels(seq, levels)
	return treeNode{Name: join(names), Value: value, HasValue: true, Paths: deflatePaths(seq, raw)}, nil
}

// del returns the entry that deletes names, to be appended at seq (the
// reference's del), or ok false when the tree is empty and there is nothing
// to write.
func (t *tree) del(seq uint64, names []string) (n treeNode, ok bool, err error) {
	if t.version >= 0 {
		return treeNode{}, false, errCheckout
	}
	head, err := t.head()
	if err != nil || head == nil {
		return treeNode{}, false, err
	}
	ignore := join(names)
	// The closest entry that still has a value: it decides how many levels
	// the deletion keeps.
	var closest *entry
	for j := len(names); closest == nil; j-- {
		lv, err := t.listAt(head, names[:j])
		if err != nil {
			return treeNode{}, false, err
		}
		nodes, err := t.entries.getAll(lv.seqs)
		if err != nil {
			return treeNode{}, false, err
		}
		for i := len(nodes) - 1; i >= 0; i-- {
			if nodes[i].name != ignore && nodes[i].node.HasValue {
				closest = nodes[i]
				break
			}
		}
		if j <= 0 {
			break
		}
	}
	var cparts []string
	if closest != nil {
		cparts = closest.parts
	}
	depth := compare(names, cparts) + 1
	levels := make([][]uint64, 0, depth)
	for i := 0; i <= len(names) && i+1 <= depth; i++ {
		lv, err := t.listAt(head, names[:i])
		if err != nil {
			return treeNode{}, false, err
		}
		nodes, err := t.entries.getAll(lv.seqs)
		if err != nil {
			return treeNode{}, false, err
		}
		target := componentOf(names, i)
		out := make([]uint64, 0, len(nodes)+1)
		for j, x := range nodes {
			if lv.comps[j] != target && x.name != ignore {
				out = append(out, x.seq)
			}
		}
		if i+1 < depth {
			out = append(out, seq)
		}
		levels = append(levels, out)
	}
	return treeNode{Name: ignore, Paths: deflatePaths(seq, levels)}, true, nil
}

// split is the reference's split: a name's components, without the empty
// ones a leading or trailing slash makes.
func split(name string) []string {
	parts := strings.Split(name, "/")
	if len(parts) > 0 && parts[0] == "" {
		parts = parts[1:]
	}
	if len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return parts
}

func join(names []string) string { return "/" + strings.Join(names, "/") }

// compare returns the length of the common prefix of a and b.
func compare(a, b []string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}
