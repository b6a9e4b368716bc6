// Package pathsafe decides whether a file that gxinetd reads or runs as
// root could be changed by someone root does not trust. It is the one
// ownership rule of gxinetd: both configuration languages apply it to
// configuration files, include directories, servers and banners when the
// daemon runs as root, and the daemon applies it again each time it
// starts a server, runs a tcp_wrappers command or sends a banner.
//
// # The rule
//
// Trusted are root and, for a server, the user the server runs as (it
// runs with that user's rights anyway), unless the server also gets group
// root (see RunAs). Check walks the path from / one component at a time
// with lstat, exactly as the kernel resolves it: every symbolic link is
// read and its target walked in turn (relative to the link's directory,
// at most 40 links, as the kernel allows), and ".." goes back up the
// directories actually reached. The path is refused when, anywhere on
// that walk:
//
//   - a directory or the final file is owned by an untrusted uid (the
//     owner can always chmod it);
//   - the final file or directory is writable by others: world-writable,
//     group-writable for any group but root (gid 0), or given write access
//     by a POSIX ACL entry naming an untrusted user or a group other than
//     root;
//   - a directory on the way is writable by others in the same sense, and
//     the next entry in it is not protected by the sticky bit. The kernel
//     lets only an entry's owner, the directory's owner and root rename or
//     remove an entry of a sticky directory, so a root-owned entry of
//     root's /tmp is safe and an entry owned by anyone else is not. This
//     applies to symbolic links too: a link's target cannot be changed,
//     only the link replaced, so a user's link in a directory only root
//     can write is harmless, while the same link in /tmp is not.
//
// The final component of a directory (an includedir) gets no sticky
// exemption: whoever can add a file to it adds configuration.
//
// CheckExec also follows "#!" lines: the interpreter of a script server
// is run as well, so it is checked with the same rule (the kernel's own
// bound of four nested interpreters applies). "#!/usr/bin/env NAME" checks
// env, not what env finds on PATH, and the ELF interpreter and shared
// libraries are not followed.
//
// # Why checking before use is enough
//
// A check that succeeds proves that only trusted users can change any
// directory entry, directory or file on the walk. Opening or executing
// the same path afterwards resolves through those same objects, so no
// untrusted user can make it reach anything else in between; a trusted
// user who does gains nothing (root), or runs his own program with his own
// rights (the run-as user: the server is executed after the daemon has
// switched to his credentials). A failed check is reported as an *Error
// naming the exact component, its owner and mode and the command that
// fixes it.
//
// # Dependencies
//
// A leaf: the standard library, golang.org/x/sys/unix, and for ForUser
// internal/service and internal/sysdb. Everything above it (parser,
// parser/inetd, access, internal/daemon) may import it; it imports nothing
// else of gxinetd.
package pathsafe
