//go:build cgo

package tcpwrap

/*
#include <netdb.h>
#include <stdlib.h>
*/
import "C"

import (
	"sync"
	"unsafe"
)

// innetgr keeps state between calls inside the C library (it is not
// safe for concurrent use), hence the lock.
var netgroupMu sync.Mutex

func nssNetgroupImpl(group, host string) bool {
	g, h := C.CString(group), C.CString(host)
	defer C.free(unsafe.Pointer(g))
	defer C.free(unsafe.Pointer(h))
	netgroupMu.Lock()
	defer netgroupMu.Unlock()
	return C.innetgr(g, h, nil, nil) == 1
}

var nssNetgroup = nssNetgroupImpl
