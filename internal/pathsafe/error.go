package pathsafe

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Problem is what makes a path unsafe.
type Problem int

const (
	None          Problem = iota
	Owner                 // At is owned by an untrusted uid
	WorldWritable         // every user may write At
	GroupWritable         // group Who (not root) may write At
	ACLUser               // an ACL entry lets uid Who write At
	ACLGroup              // an ACL entry lets group Who write At
	StickyEntry           // At, owned by an untrusted uid, is an entry of a sticky directory others can write
	Relative              // At is not an absolute path
)

// Error is a path that someone untrusted could change. At is the exact
// component at fault (with the symbolic links before it resolved), and
// Via lists the links (and "#!" interpreters) followed to reach it.
type Error struct {
	Path     string // the path checked, as given
	At       string
	Problem  Problem
	UID, GID int    // At's owner and group
	Mode     uint32 // At's permission bits, set-id and sticky bits included
	Who      int    // the group of GroupWritable, the uid or gid of an ACL entry
	// Dir and DirMode are the sticky directory of a StickyEntry.
	Dir     string
	DirMode uint32
	Via     []string
	// Trusted is the uid trusted besides root (0: none).
	Trusted int
}

// Is makes errors.Is(err, ErrUnsafe) true for every *Error.
func (e *Error) Is(target error) bool { return target == ErrUnsafe }

// ErrUnsafe matches every *Error with errors.Is.
var ErrUnsafe = errors.New("changeable by someone other than root")

// Error says what is wrong and how to fix it, for example:
//
//	/srv/ctf/run: /srv/ctf is owned by uid 1001, not root (mode 0755); fix: chown root /srv/ctf
func (e *Error) Error() string {
	var b strings.Builder
	if e.At != e.Path {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Detail())
	b.WriteString("; fix: ")
	b.WriteString(e.Fix())
	return b.String()
}

// Detail is the finding alone: the component, its owner and mode, and
// how it was reached.
func (e *Error) Detail() string {
	var s string
	mode := fmt.Sprintf("mode %04o", e.Mode)
	switch e.Problem {
	case Owner:
		trusted := "root"
		if e.Trusted > 0 {
			trusted = "root or the service's user (uid " + strconv.Itoa(e.Trusted) + ")"
		}
		s = fmt.Sprintf("%s is owned by uid %d, not %s (%s)", e.At, e.UID, trusted, mode)
	case WorldWritable:
		s = fmt.Sprintf("%s is writable by everyone (%s, owner uid %d)", e.At, mode, e.UID)
	case GroupWritable:
		s = fmt.Sprintf("%s is writable by group %d (%s, owner uid %d)", e.At, e.Who, mode, e.UID)
	case ACLUser:
		s = fmt.Sprintf("%s has an ACL entry that lets uid %d write it (%s, owner uid %d)", e.At, e.Who, mode, e.UID)
	case ACLGroup:
		s = fmt.Sprintf("%s has an ACL entry that lets group %d write it (%s, owner uid %d)", e.At, e.Who, mode, e.UID)
	case StickyEntry:
		s = fmt.Sprintf("%s is owned by uid %d (%s) in %s, a sticky directory others can write (mode %04o), so its owner can replace it",
			e.At, e.UID, mode, e.Dir, e.DirMode)
	case Relative:
		s = fmt.Sprintf("%s is not an absolute path", e.At)
	default:
		s = e.At + " is unsafe"
	}
	if len(e.Via) > 0 {
		s += " (reached through " + strings.Join(e.Via, ", then ") + ")"
	}
	return s
}

// Fix is the command that makes the component safe.
func (e *Error) Fix() string {
	switch e.Problem {
	case Owner:
		return "chown root " + e.At
	case WorldWritable:
		return "chmod o-w " + e.At
	case GroupWritable:
		return "chmod g-w " + e.At
	case ACLUser:
		return "setfacl -x u:" + strconv.Itoa(e.Who) + " " + e.At
	case ACLGroup:
		return "setfacl -x g:" + strconv.Itoa(e.Who) + " " + e.At
	case StickyEntry:
		return "chown -h root " + e.At + " (or move it out of " + e.Dir + ")"
	case Relative:
		return "write an absolute path"
	}
	return "make it owned and writable by root alone"
}
