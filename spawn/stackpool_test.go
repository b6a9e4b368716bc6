//go:build linux && cgo && !asan && !msan && (amd64 || arm64)

package spawn

import (
	"errors"
	"syscall"
	"testing"
	"unsafe"
)

// TestStartWithoutStackMemory: when no clone stack can be allocated, the
// start fails with a fork StartError (ENOMEM) that the daemon logs, as
// it did before the stacks were pooled, instead of a panic that took the
// whole daemon down; and the next start, with memory again, works.
func TestStartWithoutStackMemory(t *testing.T) {
	null := devNull(t)
	stackPool.Lock()
	pooled := stackPool.free
	stackPool.free = nil
	stackPool.Unlock()
	alloc := mallocStack
	mallocStack = func() unsafe.Pointer { return nil }
	t.Cleanup(func() {
		mallocStack = alloc
		stackPool.Lock()
		stackPool.free = append(stackPool.free, pooled...)
		stackPool.Unlock()
	})

	_, err := Start(serverSpec(t, "whoami"), null)
	var se *StartError
	if !errors.As(err, &se) || se.Step != "fork" || !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("start without stack memory: %v, want a fork StartError with ENOMEM", err)
	}

	mallocStack = alloc
	p, err := Start(serverSpec(t, "whoami"), null)
	if err != nil {
		t.Fatalf("start with memory again: %v", err)
	}
	if ws, err := p.Wait(); err != nil || !succeeded(ws) {
		t.Errorf("server: %v %v", ws, err)
	}
}
