package pathsafe

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// POSIX ACLs as Linux stores them in the system.posix_acl_access extended
// attribute: a little-endian header (version 2) and 8-byte entries of
// tag, permission and id.
const (
	aclXattr   = "system.posix_acl_access"
	aclVersion = 2

	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20

	aclWrite = 0x02
)

type aclEntry struct {
	tag, perm uint16
	id        uint32
}

// readACL returns the access ACL of path, or nil when it has none (or the
// file system keeps none).
func readACL(path string) ([]aclEntry, error) {
	var buf [512]byte
	n, err := unix.Lgetxattr(path, aclXattr, buf[:])
	if errors.Is(err, unix.ERANGE) {
		// Dozens of named entries: ask for the size and read again.
		size, serr := unix.Lgetxattr(path, aclXattr, nil)
		if serr != nil {
			return nil, serr
		}
		big := make([]byte, size)
		n, err = unix.Lgetxattr(path, aclXattr, big)
		if err != nil {
			return nil, err
		}
		return parseACL(big[:n])
	}
	switch {
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EOPNOTSUPP):
		return nil, nil
	case err != nil:
		return nil, err
	}
	return parseACL(buf[:n])
}

var errBadACL = errors.New("malformed POSIX ACL")

func parseACL(b []byte) ([]aclEntry, error) {
	if len(b) < 4 || binary.LittleEndian.Uint32(b) != aclVersion || (len(b)-4)%8 != 0 {
		return nil, errBadACL
	}
	out := make([]aclEntry, 0, (len(b)-4)/8)
	for p := b[4:]; len(p) >= 8; p = p[8:] {
		out = append(out, aclEntry{tag: binary.LittleEndian.Uint16(p), perm: binary.LittleEndian.Uint16(p[2:]),
			id: binary.LittleEndian.Uint32(p[4:])})
	}
	return out, nil
}
