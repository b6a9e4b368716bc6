//go:build linux && cgo && !asan && !msan && (amd64 || arm64)

package spawn

// sandboxBuild: the clone child (clone_linux.go, sandbox_linux.h)
// applies every sandbox attribute.
func sandboxBuild() error { return nil }

func reaperFDIfAny() (int, error) { return reaperFD() }
