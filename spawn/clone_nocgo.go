//go:build linux && !cgo

package spawn

import (
	"errors"
	"os"
)

// haveClone: without cgo, servers start through os.StartProcess or the
// exec helper (see doc.go).
const haveClone = false

func startClone(*Spec, *os.File) (*os.Process, error) {
	return nil, errors.New("spawn: built without cgo")
}
