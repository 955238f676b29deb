package hyperdrive

import (
	"fmt"
	"strings"
)

// The limits of a name a folder can hold (Linux's NAME_MAX and PATH_MAX):
// a longer one would be written to the archive and then fail when the
// folder is updated.
const (
	MaxNameBytes = 255  // one path component
	MaxPathBytes = 4096 // a whole path
)

// folderParts returns the components of the archive path name, or why a
// folder cannot hold it: a component that is empty, "." or "..", longer
// than MaxNameBytes or has a NUL, a path longer than MaxPathBytes, or a
// first component that equals one of reserved, ignoring case (for
// case-insensitive file systems). The root has no components.
func folderParts(name string, reserved []string) ([]string, error) {
	if len(name) > MaxPathBytes {
		return nil, fmt.Errorf("path is longer than %d bytes", MaxPathBytes)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return nil, fmt.Errorf("path has a NUL byte")
	}
	s := strings.TrimPrefix(name, "/")
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, "/")
	for _, p := range parts {
		switch {
		case p == "" || p == "." || p == "..":
			return nil, fmt.Errorf("path has an empty, . or .. component")
		case len(p) > MaxNameBytes:
			return nil, fmt.Errorf("a name is longer than %d bytes", MaxNameBytes)
		}
	}
	for _, r := range reserved {
		if strings.EqualFold(parts[0], r) {
			return nil, fmt.Errorf("%s is reserved for the host", parts[0])
		}
	}
	return parts, nil
}

// checkName is the rule for every path a script passes to Files: a name
// that DatStorage's folder could not hold, or that falls in its .dat
// folder, is an InvalidPathError whatever the storage, so that a script
// behaves the same in memory and on disk.
func checkName(name string) error {
	if len(name) > MaxPathBytes {
		return newError(InvalidPathError, "path is longer than %d bytes", MaxPathBytes)
	}
	if _, err := folderParts(Normalize(name), []string{DatDir}); err != nil {
		return newError(InvalidPathError, "%v", err)
	}
	return nil
}
