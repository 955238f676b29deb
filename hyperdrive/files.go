package hyperdrive

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Error is an error of the DatArchive-style API, named as Beaker named
// them so that scripts can branch on err.name. errors.Is matches an Error
// against the sentinel of the same name (NotFoundError, ...), and against
// the error it wraps, if any (ErrQuotaExceeded).
type Error struct {
	Name    string
	Message string
	err     error
}

// Unwrap returns the error e wraps, if any.
func (e *Error) Unwrap() error { return e.err }

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Name
	}
	return e.Name + ": " + e.Message
}

// Is reports whether target is the sentinel with e's name.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Name == e.Name && t.Message == ""
}

// The DatArchive errors, for errors.Is.
var (
	NotFoundError                = &Error{Name: "NotFoundError"}
	EntryAlreadyExistsError      = &Error{Name: "EntryAlreadyExistsError"}
	ParentFolderDoesntExistError = &Error{Name: "ParentFolderDoesntExistError"}
	NotAFileError                = &Error{Name: "NotAFileError"}
	NotAFolderError              = &Error{Name: "NotAFolderError"}
	DestDirectoryNotEmpty        = &Error{Name: "DestDirectoryNotEmpty"}
	InvalidPathError             = &Error{Name: "InvalidPathError"}
	ArchiveNotWritableError      = &Error{Name: "ArchiveNotWritableError"}
	InvalidEncodingError         = &Error{Name: "InvalidEncodingError"}
	QuotaExceededError           = &Error{Name: "QuotaExceededError"}
)

func newError(sentinel *Error, format string, args ...any) *Error {
	return &Error{Name: sentinel.Name, Message: fmt.Sprintf(format, args...)}
}

// validPath is Beaker's rule for the paths scripts may write.
var validPath = regexp.MustCompile(`^[a-zA-Z0-9\-._~!$&'()*+,;=:@/]+$`)

// Files is the DatArchive-style API over an archive: what a backend script
// sees as System.files. It adds Beaker's checks to the archive's raw
// operations (a parent folder must exist, a folder is not overwritten by a
// file, unlink only unlinks files, ...) and reports failures as *Error.
//
// Every path is checked first (checkName): one under .dat, in any case,
// or with a component over MaxNameBytes, a length over MaxPathBytes or a
// NUL, is an InvalidPathError, and nothing is read or written.
type Files struct {
	a     *Archive
	quota Quota
	used  uint64 // bytes this view has let its writes add (see WithQuota)
	stop  func() error
}

// SetStop makes the operations of this view that walk many entries (a
// recursive Readdir or Rmdir) ask stop before each entry, and end with
// its error: a host stops a call that ran past its budget. A recursive
// Rmdir stopped half way has deleted part of the folder: the caller takes
// the archive back (Archive.Rollback).
func (f *Files) SetStop(stop func() error) { f.stop = stop }

func (f *Files) stopped() error {
	if f.stop == nil {
		return nil
	}
	return f.stop()
}

// Files returns the DatArchive-style API of a.
func (a *Archive) Files() *Files { return &Files{a: a} }

// Info is what GetInfo reports.
type Info struct {
	Key         string `json:"key"`
	URL         string `json:"url"`
	Version     uint64 `json:"version"`
	IsOwner     bool   `json:"isOwner"`
	Title       string `json:"title"`
	Description string `json:"description"`
	// Size is the bytes of both feeds.
	Size uint64 `json:"size"`
}

// GetInfo describes the archive; title and description come from /dat.json.
func (f *Files) GetInfo() (Info, error) {
	info := Info{
		Key:     hex.EncodeToString(f.a.Key()),
		Version: f.a.Version(),
		IsOwner: f.a.Writable(),
		Size:    f.a.metadata.ByteLength(),
	}
	info.URL = "dat://" + info.Key
	if c := f.a.Content(); c != nil {
		info.Size += c.ByteLength()
	}
	if b, err := f.a.ReadFile("/dat.json"); err == nil {
		var manifest struct{ Title, Description string }
		if json.Unmarshal(b, &manifest) == nil {
			info.Title, info.Description = manifest.Title, manifest.Description
		}
	}
	return info, nil
}

// FileStat is what Stat reports.
type FileStat struct {
	Mode         uint32
	Size, Blocks uint64
	Offset       uint64
	Mtime, Ctime time.Time
}

// IsFile reports whether s is a file.
func (s FileStat) IsFile() bool { return Stat{Mode: s.Mode}.IsFile() }

// IsDirectory reports whether s is a directory.
func (s FileStat) IsDirectory() bool { return Stat{Mode: s.Mode}.IsDir() }

func fileStat(st Stat) FileStat {
	return FileStat{
		Mode: st.Mode, Size: st.Size, Blocks: st.Blocks, Offset: st.Offset,
		Mtime: time.UnixMilli(st.Mtime).UTC(), Ctime: time.UnixMilli(st.Ctime).UTC(),
	}
}

// translate turns archive errors into DatArchive errors.
func translate(err error, name string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return newError(NotFoundError, "file not found (%s)", name)
	case errors.Is(err, ErrNotWritable):
		return newError(ArchiveNotWritableError, "cannot write to this archive")
	case errors.Is(err, ErrNotEmpty):
		return newError(DestDirectoryNotEmpty, "directory is not empty (%s)", name)
	}
	return err
}

func (f *Files) stat(name string) (Stat, bool, error) {
	st, err := f.a.Stat(name)
	if errors.Is(err, ErrNotFound) {
		return Stat{}, false, nil
	}
	return st, err == nil, err
}

// Stat returns what name is.
func (f *Files) Stat(name string) (FileStat, error) {
	if err := checkName(name); err != nil {
		return FileStat{}, err
	}
	st, err := f.a.Stat(name)
	if err != nil {
		return FileStat{}, translate(err, Normalize(name))
	}
	return fileStat(st), nil
}

// ReadFile returns the bytes of the file name.
func (f *Files) ReadFile(name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	st, ok, err := f.stat(name)
	if err != nil {
		return nil, translate(err, name)
	}
	if !ok {
		return nil, newError(NotFoundError, "file not found (%s)", Normalize(name))
	}
	if !st.IsFile() {
		return nil, newError(NotAFileError, "cannot read a folder (%s)", Normalize(name))
	}
	b, err := f.a.ReadRange(name, 0, st.Size)
	return b, translate(err, Normalize(name))
}

func (f *Files) checkWritable() error {
	if !f.a.Writable() {
		return newError(ArchiveNotWritableError, "cannot write to this archive")
	}
	return nil
}

func checkPath(name string) error {
	if !validPath.MatchString(name) {
		return newError(InvalidPathError, "path contains invalid characters (%q)", name)
	}
	return nil
}

func (f *Files) checkParent(name string) error {
	parent := path.Dir(Normalize(name))
	if parent == "/" {
		return nil
	}
	st, ok, err := f.stat(parent)
	if err != nil {
		return err
	}
	if !ok || !st.IsDir() {
		return newError(ParentFolderDoesntExistError, "no folder %s", parent)
	}
	return nil
}

// WriteFile writes data as the file name. The parent folder must exist, a
// folder is not overwritten, and an overwritten file keeps its ctime.
func (f *Files) WriteFile(name string, data []byte, o WriteOptions) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	if strings.HasSuffix(name, "/") {
		return newError(InvalidPathError, "files can not have a trailing slash (%q)", name)
	}
	if err := checkPath(name); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	existing, ok, err := f.stat(name)
	if err != nil {
		return err
	}
	if ok && !existing.IsFile() {
		return newError(EntryAlreadyExistsError, "cannot overwrite non-files (%s)", Normalize(name))
	}
	if ok {
		o.Ctime = time.UnixMilli(existing.Ctime)
	}
	if err := f.checkParent(name); err != nil {
		return err
	}
	return translate(f.a.writeFile(name, data, o, f.grower()), Normalize(name))
}

// Mkdir makes the folder name; its parent must exist and name must not.
func (f *Files) Mkdir(name string, o WriteOptions) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	if err := checkPath(name); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	_, ok, err := f.stat(name)
	if err != nil {
		return err
	}
	if Normalize(name) == "/" || ok {
		return newError(EntryAlreadyExistsError, "cannot overwrite files or folders (%s)", Normalize(name))
	}
	if err := f.checkParent(name); err != nil {
		return err
	}
	return translate(f.a.mkdir(name, o, f.grower()), Normalize(name))
}

// Readdir lists the folder name. With recursive, entries of sub-folders
// follow their folder as slash-separated relative paths.
func (f *Files) Readdir(name string, recursive bool) ([]string, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return f.readdir(Normalize(name), recursive)
}

// readdir is Readdir of a checked name: below it, the archive's entries
// are listed whatever their names.
func (f *Files) readdir(name string, recursive bool) ([]string, error) {
	st, ok, err := f.stat(name)
	if err != nil {
		return nil, translate(err, name)
	}
	if !ok {
		return nil, newError(NotFoundError, "folder not found (%s)", name)
	}
	if !st.IsDir() {
		return nil, newError(NotAFolderError, "not a folder (%s)", name)
	}
	list, err := f.a.Readdir(name)
	if err != nil || !recursive {
		return list, translate(err, name)
	}
	// Depth first, in the order a recursion would list them, each path
	// built once from its folder's: a deep chain of folders costs its
	// paths' length, not that times its depth again.
	type frame struct {
		dir, prefix string   // the folder, and its path in the listing
		rest        []string // its entries not yet listed
	}
	var out []string
	stack := []frame{{dir: name, rest: list}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if len(top.rest) == 0 {
			stack = stack[:len(stack)-1]
			continue
		}
		if err := f.stopped(); err != nil {
			return nil, err
		}
		c := top.rest[0]
		top.rest = top.rest[1:]
		listed := top.prefix + c
		out = append(out, listed)
		if c == "" {
			continue // only a hostile feed has these; it leads nowhere new
		}
		sub := path.Join(top.dir, c)
		if st, ok, _ := f.stat(sub); ok && st.IsDir() {
			below, err := f.a.Readdir(sub)
			if err != nil {
				return nil, translate(err, sub)
			}
			stack = append(stack, frame{dir: sub, prefix: listed + "/", rest: below})
		}
	}
	return out, nil
}

// Unlink deletes the file name.
func (f *Files) Unlink(name string) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	st, ok, err := f.stat(name)
	if err != nil {
		return err
	}
	if !ok {
		return newError(NotFoundError, "file not found (%s)", Normalize(name))
	}
	if !st.IsFile() {
		return newError(NotAFileError, "cannot unlink non-files (%s)", Normalize(name))
	}
	return translate(f.a.unlink(name, f.grower()), Normalize(name))
}

// Rmdir deletes the folder name: an empty one, or with recursive, with
// everything in it.
func (f *Files) Rmdir(name string, recursive bool) error {
	if err := f.checkWritable(); err != nil {
		return err
	}
	if err := checkName(name); err != nil {
		return err
	}
	grow := f.grower()
	if grow == nil || !recursive {
		return f.rmdir(Normalize(name), recursive, grow)
	}
	// A quota can stop a recursive rmdir half way: it is taken back
	// whole, so that a refused call leaves the archive as it was.
	if err := f.a.Begin(); err != nil {
		return translate(err, Normalize(name))
	}
	if err := f.rmdir(Normalize(name), recursive, grow); err != nil {
		if rerr := f.a.Rollback(); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	return f.a.Commit()
}

// rmdir is Rmdir of a checked name: below it, the archive's entries are
// deleted whatever their names.
func (f *Files) rmdir(name string, recursive bool, grow grower) error {
	st, ok, err := f.stat(name)
	if err != nil {
		return err
	}
	if !ok {
		return newError(NotFoundError, "folder not found (%s)", name)
	}
	if !st.IsDir() {
		return newError(NotAFolderError, "cannot rmdir non-folders (%s)", name)
	}
	children, err := f.a.Readdir(name)
	if err != nil {
		return translate(err, name)
	}
	if len(children) > 0 && !recursive {
		return newError(DestDirectoryNotEmpty, "folder is not empty (%s)", name)
	}
	for _, c := range children {
		if err := f.stopped(); err != nil {
			return err
		}
		sub := path.Join(name, c)
		cst, ok, err := f.stat(sub)
		if err != nil {
			return err
		}
		switch {
		case !ok:
		case cst.IsDir():
			err = f.rmdir(sub, true, grow)
		default:
			err = translate(f.a.unlink(sub, grow), sub)
		}
		if err != nil {
			return err
		}
	}
	if name == "/" {
		return nil
	}
	return translate(f.a.rmdir(name, grow), name)
}

// Change is one entry of History.
type Change struct {
	Path    string `json:"path"`
	Version uint64 `json:"version"`
	Type    string `json:"type"` // "put" or "del"
}

// History lists changes with versions in [start, end) (end 0: to the
// latest), oldest first unless reverse.
func (f *Files) History(start, end uint64, reverse bool) ([]Change, error) {
	hist, err := f.a.HistoryRange(start, end)
	if err != nil {
		return nil, err
	}
	out := make([]Change, 0, len(hist))
	for _, h := range hist {
		out = append(out, Change{Path: h.Name, Version: h.Version, Type: h.Type})
	}
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

// Checkout returns the API over the archive as it was at version.
func (f *Files) Checkout(version uint64) (*Files, error) {
	co, err := f.a.Checkout(version)
	if err != nil {
		return nil, newError(NotFoundError, "no version %d", version)
	}
	return co.Files(), nil
}

// DecodeContent returns b in an encoding: "utf8" (or "utf-8", the
// default), "base64" and "hex" give a string, "binary" the bytes, "json" the
// parsed value.
func DecodeContent(b []byte, encoding string) (any, error) {
	switch strings.ToLower(encoding) {
	case "", "utf8", "utf-8":
		if !utf8.Valid(b) {
			return strings.ToValidUTF8(string(b), "\uFFFD"), nil
		}
		return string(b), nil
	case "base64":
		return base64.StdEncoding.EncodeToString(b), nil
	case "hex":
		return hex.EncodeToString(b), nil
	case "binary", "buffer":
		return b, nil
	case "json":
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, newError(InvalidEncodingError, "file is not JSON: %v", err)
		}
		return v, nil
	}
	return nil, newError(InvalidEncodingError, "unknown encoding %q", encoding)
}

// EncodeContent returns the bytes a string in an encoding stands for:
// "utf8" (the default), "base64" or "hex".
func EncodeContent(s, encoding string) ([]byte, error) {
	switch strings.ToLower(encoding) {
	case "", "utf8", "utf-8":
		return []byte(s), nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, newError(InvalidEncodingError, "not base64: %v", err)
		}
		return b, nil
	case "hex":
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, newError(InvalidEncodingError, "not hex: %v", err)
		}
		return b, nil
	}
	return nil, newError(InvalidEncodingError, "cannot write a string as %q", encoding)
}
