package git

import (
	"os"

	"golang.org/x/sys/unix"
)

// linkAt makes name in folder to a hard link of name in folder from.
// name is a bare, checked name, and a link at it is linked itself, never
// followed (no AT_SYMLINK_FOLLOW). It fails if name exists in to.
func linkAt(from, to *os.File, name string) error {
	return unix.Linkat(int(from.Fd()), name, int(to.Fd()), name, 0)
}

// openDirAt opens the folder name inside parent, refusing a link there.
func openDirAt(parent *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(parent.Fd()), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}
