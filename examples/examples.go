// Package examples holds the backend scripts of the tutorial, embedded so
// that tests, benchmarks and the command can use them: counter.js,
// persistent-counter.js, photo-album.js, secure-counter.js, random.js and
// key-server.js.
package examples

import (
	"embed"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.js
var scripts embed.FS

// Script returns the source of the named script ("counter.js").
func Script(name string) (string, error) {
	b, err := scripts.ReadFile(name)
	return string(b), err
}

// Names lists the scripts.
func Names() []string {
	entries, _ := fs.ReadDir(scripts, ".")
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".js") {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}
