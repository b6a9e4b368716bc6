//go:build linux && (!cgo || asan || msan || !(amd64 || arm64))

package spawn

import (
	"errors"
	"os"
)

// haveClone: without the clone path (no cgo, a sanitizer build, or an
// architecture the C routine does not know), servers start through
// os.StartProcess's fork or the exec helper (see doc.go).
const haveClone = false

const (
	cloneTestStop         = 1
	cloneTestNoCloseRange = 2
	cloneTestNoProc       = 4
	cloneTestKeepFDs      = 8
)

var cloneTest int

func startClone(*Spec, *os.File, int) (*Process, error) {
	return nil, errors.New("spawn: built without the clone path")
}
