package git

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// floorFile, beside a bare clone, holds the clone's size right after it
// was last made fresh: a repository that is over the bound on its own is
// then dropped only when it has doubled, not at every fetch.
const floorFile = ".converge-fresh-size"

// bound drops the bare clone of repoURL when it is over MaxCloneBytes.
// It runs under the repository's lock, before open, so the next resolve
// fetches the wanted revision into an empty clone. Trees already
// materialised are not touched: renders may be reading them.
func (f *Fetcher) bound(repoURL string) error {
	limit := f.o.MaxCloneBytes
	if limit < 0 {
		return nil
	}
	if limit == 0 {
		limit = 1 << 30
	}
	dir := f.repoDir(repoURL)
	size, err := cloneSize(dir)
	if err != nil || size == 0 {
		return nil // no clone yet, or one open will report on
	}
	floor := readFloor(dir)
	if size <= max(limit, 2*floor) {
		return nil
	}
	// Rename first, so that a crash mid-removal leaves no half clone
	// where open would find it.
	gone := dir + ".old"
	os.RemoveAll(gone)
	if err := os.Rename(dir, gone); err != nil {
		return fmt.Errorf("drop the clone over %d bytes: %w", limit, err)
	}
	os.RemoveAll(gone)
	// Refs resolved from the old clone may name commits the new one
	// does not have yet.
	f.Forget(repoURL)
	return nil
}

// recordFresh notes a new clone's size after its first fetch.
func (f *Fetcher) recordFresh(repoURL string) {
	dir := f.repoDir(repoURL)
	if size, err := cloneSize(dir); err == nil {
		os.WriteFile(filepath.Join(dir, floorFile), []byte(strconv.FormatInt(size, 10)), 0o600)
	}
}

func readFloor(dir string) int64 {
	data, err := os.ReadFile(filepath.Join(dir, floorFile))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}

// cloneSize is the size of a bare clone's objects: packs and loose ones.
func cloneSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(filepath.Join(dir, "objects"), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if os.IsNotExist(err) {
		return 0, nil
	}
	return total, err
}
