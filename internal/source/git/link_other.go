//go:build !linux

package git

import (
	"errors"
	"os"
)

// Elsewhere checkouts are written whole: see link_linux.go.
func linkAt(from, to *os.File, name string) error { return errors.ErrUnsupported }

func openDirAt(parent *os.File, name string) (*os.File, error) { return nil, errors.ErrUnsupported }
