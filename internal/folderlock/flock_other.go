//go:build !unix

package folderlock

import (
	"errors"
	"os"
)

var errHeld = errors.New("held")

func flock(*os.File) error { return errors.New("folder locks need a Unix system") }
