package hyperdrive

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Mode bits of Stat.Mode, as in stat(2).
const (
	ModeFile = 0o100000 // S_IFREG
	ModeDir  = 0o040000 // S_IFDIR
	modeType = 0o170000

	defaultFileMode = 0o644
	defaultDirMode  = 0o755
)

// errMessage is wrapped by every decoding error.
var errMessage = errors.New("malformed message")

// Index is block 0 of the metadata feed: it names the archive's type and
// its content feed.
type Index struct {
	Type    string // "hyperdrive"
	Content []byte // the content feed's public key
}

// Stat is the value of a tree entry: what a file or directory was when it
// was written. Times are milliseconds since the Unix epoch.
//
// Its encoding follows the reference: a file carries every field; a
// directory made by mkdir carries mode, offset, byteOffset, mtime and ctime.
// Decoding accepts any subset, as peers may write less.
type Stat struct {
	Mode       uint32
	UID, GID   uint32
	Size       uint64 // bytes
	Blocks     uint64 // content blocks
	Offset     uint64 // first content block
	ByteOffset uint64 // the content feed's byte length before the file
	Mtime      int64
	Ctime      int64
}

// IsDir reports whether s describes a directory.
func (s Stat) IsDir() bool { return s.Mode&modeType == ModeDir }

// IsFile reports whether s describes a regular file.
func (s Stat) IsFile() bool { return s.Mode&modeType == ModeFile }

// treeNode is an append-tree entry (metadata blocks 1 and up): a path, an
// optional Stat (absent for a deletion) and the encoded pointers to the
// entries that were current when it was written (see paths.go).
type treeNode struct {
	Name     string
	Value    []byte // an encoded Stat; nil for a deletion
	HasValue bool
	Paths    []byte
}

func (x Index) encode() []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, x.Type)
	if x.Content != nil {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, x.Content)
	}
	return b
}

func decodeIndex(b []byte) (Index, error) {
	var x Index
	var sawType bool
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			x.Type, sawType = string(v), true
		case num == 2 && typ == protowire.BytesType:
			x.Content = append([]byte{}, v...)
		}
		return nil
	})
	if err == nil && !sawType {
		err = fmt.Errorf("%w: index without a type", errMessage)
	}
	return x, err
}

func (s Stat) encode() []byte {
	var b []byte
	field := func(num protowire.Number, v uint64) {
		b = protowire.AppendTag(b, num, protowire.VarintType)
		b = protowire.AppendVarint(b, v)
	}
	field(1, uint64(s.Mode))
	if !s.IsDir() {
		field(2, uint64(s.UID))
		field(3, uint64(s.GID))
		field(4, s.Size)
		field(5, s.Blocks)
	}
	field(6, s.Offset)
	field(7, s.ByteOffset)
	field(8, uint64(s.Mtime))
	field(9, uint64(s.Ctime))
	return b
}

func decodeStat(b []byte) (Stat, error) {
	var s Stat
	var sawMode bool
	err := walk(b, func(num protowire.Number, typ protowire.Type, _ []byte, v uint64) error {
		if typ != protowire.VarintType {
			return nil
		}
		switch num {
		case 1:
			s.Mode, sawMode = uint32(v), true
		case 2:
			s.UID = uint32(v)
		case 3:
			s.GID = uint32(v)
		case 4:
			s.Size = v
		case 5:
			s.Blocks = v
		case 6:
			s.Offset = v
		case 7:
			s.ByteOffset = v
		case 8:
			s.Mtime = int64(v)
		case 9:
			s.Ctime = int64(v)
		}
		return nil
	})
	if err == nil && !sawMode {
		err = fmt.Errorf("%w: stat without a mode", errMessage)
	}
	return s, err
}

func (n treeNode) encode() []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendString(b, n.Name)
	if n.HasValue {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendBytes(b, n.Value)
	}
	if n.Paths != nil {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendBytes(b, n.Paths)
	}
	return b
}

func decodeTreeNode(b []byte) (treeNode, error) {
	var n treeNode
	var sawName bool
	err := walk(b, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1:
			n.Name, sawName = string(v), true
		case 2:
			n.Value, n.HasValue = v, true
		case 3:
			n.Paths = v
		}
		return nil
	})
	if err == nil && !sawName {
		err = fmt.Errorf("%w: entry without a name", errMessage)
	}
	return n, err
}

// walk calls fn for each field of a protobuf message: bytes fields get v,
// varint fields get x; fields of other types are skipped.
func walk(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", errMessage, protowire.ParseError(n))
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return fmt.Errorf("%w: field %d: %v", errMessage, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}
