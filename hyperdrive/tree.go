package hyperdrive

import (
	"errors"
	"fmt"
	"strings"
	"sync"

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

// component returns parts[i], and whether there is one.
func (e *entry) component(i int) (string, bool) {
	if i < len(e.parts) {
		return e.parts[i], true
	}
	return "", false
}

// sameComponent is the reference's `a[i] === b[i]`, where either side may
// be undefined.
func sameComponent(a string, aok bool, b string, bok bool) bool {
	return aok == bok && (!aok || a == b)
}

// entries reads and caches tree entries of a metadata feed. Names are kept
// for every entry read (a listing of n children touches n of them), decoded
// paths for a bounded number, since a big directory's entries carry many.
type entries struct {
	feed *hypercore.Feed

	mu     sync.Mutex
	byseq  map[uint64]*entry
	levels map[uint64][][]uint64
	order  []uint64 // insertion order of levels, for eviction
}

const maxCachedLevels = 256

func newEntries(feed *hypercore.Feed) *entries {
	return &entries{feed: feed, byseq: map[uint64]*entry{}, levels: map[uint64][][]uint64{}}
}

// get returns entry seq (seq >= 1).
func (c *entries) get(seq uint64) (*entry, error) {
	c.mu.Lock()
	e, ok := c.byseq[seq]
	c.mu.Unlock()
	if ok {
		return e, nil
	}
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
	e = &entry{seq: seq, name: n.Name, parts: split(n.Name), node: n}
	c.mu.Lock()
	c.byseq[seq] = e
	c.mu.Unlock()
	return e, nil
}

// add caches an entry that was just appended.
func (c *entries) add(seq uint64, n treeNode) *entry {
	e := &entry{seq: seq, name: n.Name, parts: split(n.Name), node: n}
	c.mu.Lock()
	c.byseq[seq] = e
	c.mu.Unlock()
	return e
}

// inflate returns e's pointer levels.
func (c *entries) inflate(e *entry) ([][]uint64, error) {
	c.mu.Lock()
	l, ok := c.levels[e.seq]
	c.mu.Unlock()
	if ok {
		return l, nil
	}
	l, err := inflatePaths(e.seq, e.node.Paths)
	if err != nil {
		return nil, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, e.seq, err)
	}
	for _, level := range l {
		for _, s := range level {
			// Entries point only back in time (and at themselves), which is
			// what makes every walk below finish.
			if s > e.seq || s == 0 {
				return nil, fmt.Errorf("%w: entry %d points at %d", ErrCorrupt, e.seq, s)
			}
		}
	}
	c.mu.Lock()
	if len(c.order) >= maxCachedLevels {
		delete(c.levels, c.order[0])
		c.order = c.order[1:]
	}
	c.levels[e.seq] = l
	c.order = append(c.order, e.seq)
	c.mu.Unlock()
	return l, nil
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

// listAt returns the entries that stand for the children of names, as seen
// from e (the reference's _list).
func (t *tree) listAt(e *entry, names []string) ([]*entry, error) {
	for {
		levels, err := t.entries.inflate(e)
		if err != nil {
			return nil, err
		}
		cmp := compare(e.parts, names)
		var index []uint64
		if cmp < len(levels) {
			index = levels[cmp]
		}
		if cmp == len(names) {
			return t.getAll(index)
		}
		if len(index) == 0 || (len(index) == 1 && index[0] == e.seq) {
			return nil, nil
		}
		// The child of the common prefix that leads towards names.
		var next *entry
		for _, seq := range index {
			c, err := t.entries.get(seq)
			if err != nil {
				return nil, err
			}
			if s, ok := c.component(cmp); ok && s == names[cmp] {
				next = c
				break
			}
		}
		if next == nil {
			return nil, nil
		}
		if next.seq >= e.seq {
			return nil, fmt.Errorf("%w: entry %d points at %d", ErrCorrupt, e.seq, next.seq)
		}
		e = next
	}
}

func (t *tree) getAll(seqs []uint64) ([]*entry, error) {
	out := make([]*entry, len(seqs))
	for i, seq := range seqs {
		e, err := t.entries.get(seq)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
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
		levels, err := t.entries.inflate(e)
		if err != nil {
			return nil, false, err
		}
		if cmp >= len(levels) {
			return nil, false, nil
		}
		index := levels[cmp]
		if n := len(index); n > 0 && index[n-1] == e.seq {
			index = index[:n-1]
		}
		target, tok := "", cmp < len(names)
		if tok {
			target = names[cmp]
		}
		var next *entry
		for _, seq := range index {
			c, err := t.entries.get(seq)
			if err != nil {
				return nil, false, err
			}
			if s, ok := c.component(cmp); sameComponent(s, ok, target, tok) {
				next = c
				break
			}
		}
		if next == nil {
			return nil, false, nil
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
	nodes, err := t.listAt(head, names)
	if err != nil || len(nodes) == 0 {
		return nil, false, err
	}
	children = []string{}
	for _, n := range nodes {
		if len(n.parts) > len(names) {
			children = append(children, n.parts[len(names)])
		}
	}
	return children, true, nil
}

// errNoHead is returned by put and del on a checkout.
var errCheckout = errors.New("cannot write to a checkout")

// put returns the entry that records value under names, to be appended at
// seq (the reference's put).
func (t *tree) put(seq uint64, names []string, value []byte) (treeNode, error) {
	if t.version >= 0 {
		return treeNode{}, errCheckout
	}
	head, err := t.head()
	if err != nil {
		return treeNode{}, err
	}
	levels := make([][]uint64, 0, len(names)+1)
	if head == nil {
		for i := 0; i <= len(names); i++ {
			levels = append(levels, []uint64{seq})
		}
	} else {
		for i := 0; i <= len(names); i++ {
			nodes, err := t.listAt(head, names[:i])
			if err != nil {
				return treeNode{}, err
			}
			target, tok := "", i < len(names)
			if tok {
				target = names[i]
			}
			level := make([]uint64, 0, len(nodes)+1)
			for _, n := range nodes {
				if s, ok := n.component(i); !sameComponent(s, ok, target, tok) {
					level = append(level, n.seq)
				}
			}
			levels = append(levels, append(level, seq))
		}
	}
	return treeNode{Name: join(names), Value: value, HasValue: true, Paths: deflatePaths(seq, levels)}, nil
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
		nodes, err := t.listAt(head, names[:j])
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
		nodes, err := t.listAt(head, names[:i])
		if err != nil {
			return treeNode{}, false, err
		}
		target, tok := "", i < len(names)
		if tok {
			target = names[i]
		}
		level := make([]uint64, 0, len(nodes)+1)
		for _, n := range nodes {
			if s, ok := n.component(i); !sameComponent(s, ok, target, tok) && n.name != ignore {
				level = append(level, n.seq)
			}
		}
		if i+1 < depth {
			level = append(level, seq)
		}
		levels = append(levels, level)
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
