package git

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/gittestserver"

	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/source"
)

// gitCmd runs git in dir and returns its trimmed output.
func gitCmd(t *testing.T, dir string, stdin []byte, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// rawTree is a tree object's body, entries in the order given: git's own
// tools would refuse some of these trees, so they are written literally.
func rawTree(t *testing.T, entries ...[3]string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, e := range entries { // mode, name, hex object id
		id, err := hex.DecodeString(e[2])
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(e[0] + " " + e[1] + "\x00")
		b.Write(id)
	}
	return b.Bytes()
}

// snapshotDirTree lists every path below dir with its content or link
// target, to prove a folder was not changed.
func snapshotDirTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String())
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			b.WriteString(" " + string(data))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

// TestCraftedTreesWriteNothingOutside checks out commits whose trees git
// itself would never make: each must be refused before anything is
// written, and the folder a link points to must stay as it was.
func TestCraftedTreesWriteNothingOutside(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "x"), []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshotDirTree(t, outside)

	bare := filepath.Join(t.TempDir(), "evil.git")
	gitCmd(t, ".", nil, "init", "--bare", "-q", bare)
	gitCmd(t, bare, nil, "symbolic-ref", "HEAD", "refs/heads/main")
	blob := func(content string) string {
		return gitCmd(t, bare, []byte(content), "hash-object", "-w", "--stdin")
	}
	tree := func(body []byte) string {
		return gitCmd(t, bare, body, "hash-object", "-t", "tree", "--literally", "-w", "--stdin")
	}
	payload := blob("overwritten by a crafted commit\n")
	link := blob(outside)
	inner := tree(rawTree(t, [3]string{"100644", "x", payload}, [3]string{"100644", "new", payload}))
	ok := blob("kind: ConfigMap\n")

	cases := []struct {
		name string
		tree string
	}{
		{"link then folder of the same name", tree(rawTree(t,
			[3]string{"120000", "a", link}, [3]string{"40000", "a", inner}))},
		{"folder then link of the same name", tree(rawTree(t,
			[3]string{"40000", "a", inner}, [3]string{"120000", "a", link}))},
		{"dot-dot entry", tree(rawTree(t, [3]string{"100644", "ok.yaml", ok}, [3]string{"40000", "..", inner}))},
		{".git folder", tree(rawTree(t, [3]string{"40000", ".GIT", inner}))},
		{"slash in a name", tree(rawTree(t, [3]string{"100644", "a/../../x", payload}))},
		{"same file twice", tree(rawTree(t, [3]string{"100644", "x", ok}, [3]string{"100644", "x", payload}))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			commit := gitCmd(t, bare, nil, "commit-tree", c.tree, "-m", c.name)
			gitCmd(t, bare, nil, "update-ref", "refs/heads/main", commit)
			cache := t.TempDir()
			f := New(Options{CacheDir: cache})
			_, err := f.Fetch(context.Background(), "file://"+bare, source.Ref{Commit: commit}, Auth{})
			if after := snapshotDirTree(t, outside); after != before {
				t.Errorf("the folder outside the cache changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if !errors.Is(err, ErrUnsafeTree) {
				t.Fatalf("got %v, want ErrUnsafeTree", err)
			}
			if _, err := os.Stat(filepath.Join(cache, "trees", commit)); err == nil {
				t.Error("a snapshot of the refused commit was left in the cache")
			}
		})
	}

	// A link that stays inside the tree is kept as it is.
	good := tree(rawTree(t, [3]string{"100644", "cm.yaml", ok}, [3]string{"120000", "alias.yaml", blob("cm.yaml")}))
	commit := gitCmd(t, bare, nil, "commit-tree", good, "-m", "fine")
	gitCmd(t, bare, nil, "update-ref", "refs/heads/main", commit)
	snap, err := New(Options{CacheDir: t.TempDir()}).Fetch(context.Background(), "file://"+bare, source.Ref{Commit: commit}, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(snap.Dir, "alias.yaml")); err != nil || target != "cm.yaml" {
		t.Errorf("inner link: got %q, %v", target, err)
	}
}

// TestCredentialsStayInMemory fetches with the credentials in the URL,
// as users write them, and checks that no file of the cache holds them,
// that the cache is private, and that errors never show them, whether
// the URL carries user:password or a bare token as the user name.
func TestCredentialsStayInMemory(t *testing.T) {
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(srv.Root())
	srv.Auth("alice", "s3cret-planted-pass")
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	defer srv.StopHTTP()
	_, _, second := fixture(t, filepath.Join(srv.Root(), "org", "app.git"))
	u := strings.Replace(srv.HTTPAddress(), "http://", "http://alice:s3cret-planted-pass@", 1) + "/org/app.git"

	cache := t.TempDir()
	f := New(Options{CacheDir: cache})
	snap, err := f.Fetch(context.Background(), u, source.Ref{}, Auth{})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != second.String() {
		t.Fatalf("revision %s, want %s", snap.Revision, second)
	}
	// A second fetch of a pinned commit reads the same clone.
	if _, err := f.Fetch(context.Background(), u, source.Ref{Commit: second.String()[:12]}, Auth{}); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(cache, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		data, _ := os.ReadFile(p)
		if bytes.Contains(data, []byte("s3cret-planted-pass")) {
			t.Errorf("%s holds the password", p)
		}
		return nil
	})
	for _, d := range []string{cache, filepath.Join(cache, "repos"), filepath.Join(cache, "trees")} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v (%v), want 0700", d, fi.Mode().Perm(), err)
		}
	}

	for _, bad := range []string{
		"http://ghp_plantedToken0123@127.0.0.1:1/org/app.git",
		"http://x-access-token:ghp_plantedToken0123@127.0.0.1:1/org/app.git",
	} {
		_, err := New(Options{CacheDir: t.TempDir(), Timeout: 5 * time.Second}).Fetch(context.Background(), bad, source.Ref{}, Auth{})
		if err == nil || strings.Contains(err.Error(), "ghp_plantedToken0123") {
			t.Errorf("error for %s: %v", Redact(bad), err)
		}
	}
}

// TestTreeCacheIsBounded: with a bound of 2, the least recently used
// tree goes once a third is written, unless it was used within the grace
// period; the one just used always stays.
func TestTreeCacheIsBounded(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "app.git")
	p, first, second := fixture(t, bare)
	third := p.Commit("three", map[string]string{"app/config.yaml": "version: 3\n"})
	p.Publish()
	cache := t.TempDir()
	f := New(Options{CacheDir: cache, MaxTrees: 2})
	fetch := func(h string) {
		t.Helper()
		if _, err := f.Fetch(context.Background(), "file://"+bare, source.Ref{Commit: h}, Auth{}); err != nil {
			t.Fatal(err)
		}
	}
	trees := func() int {
		entries, _ := os.ReadDir(filepath.Join(cache, "trees"))
		return len(entries)
	}
	fetch(first.String())
	fetch(second.String())
	fetch(third.String())
	if n := trees(); n != 3 {
		t.Fatalf("%d trees, want 3: all were used within the grace period", n)
	}
	// Age the first two: the older is collected when a tree is written.
	old := time.Now().Add(-2 * treeGrace)
	os.Chtimes(filepath.Join(cache, "trees", first.String()), old, old)
	os.Chtimes(filepath.Join(cache, "trees", second.String()), old.Add(time.Minute), old.Add(time.Minute))
	os.RemoveAll(filepath.Join(cache, "trees", third.String()))
	fetch(third.String())
	if _, err := os.Stat(filepath.Join(cache, "trees", first.String())); err == nil {
		t.Error("the least recently used tree was kept")
	}
	if n := trees(); n != 2 {
		t.Errorf("%d trees, want 2", n)
	}
	fetch(first.String()) // comes back when needed
}

// TestCloneIsBounded: each new revision of a repository whose 1 MB file
// changes every commit adds a pack to the bare clone. With a bound of
// 3 MiB the clone is dropped and fetched again at the wanted revision,
// so it stays under the bound plus one fetch; without one it grows.
func TestCloneIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bound int64
		check func(t *testing.T, sizes []int64)
	}{
		{"bounded", 3 << 20, func(t *testing.T, sizes []int64) {
			for i, s := range sizes {
				if s > 4<<20 {
					t.Errorf("after fetch %d the clone is %d bytes, over the 3 MiB bound plus one fetch", i+1, s)
				}
			}
		}},
		{"unbounded", -1, func(t *testing.T, sizes []int64) {
			if last := sizes[len(sizes)-1]; last < 7<<20 {
				t.Errorf("without a bound the clone is %d bytes after 8 revisions of 1 MB; the test proves nothing", last)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bare := filepath.Join(t.TempDir(), "big.git")
			p := gittest.NewRepo(t, bare)
			cache := t.TempDir()
			f := New(Options{CacheDir: cache, MaxCloneBytes: tc.bound})
			var sizes []int64
			for i := 0; i < 8; i++ {
				blob := make([]byte, 1<<20)
				rand.Read(blob) // incompressible: every revision is a new megabyte
				p.Commit(fmt.Sprint("rev ", i), map[string]string{"blob.bin": string(blob), "n.txt": fmt.Sprint(i)})
				p.Publish()
				snap, err := f.Fetch(context.Background(), gittest.FileURL(bare), source.Ref{Branch: "main"}, Auth{})
				if err != nil {
					t.Fatal(err)
				}
				if got := read(t, snap, "n.txt"); got != fmt.Sprint(i) {
					t.Fatalf("revision %d: read %q", i, got)
				}
				size, err := cloneSize(f.repoDir(gittest.FileURL(bare)))
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, size)
			}
			t.Logf("clone sizes: %v", sizes)
			tc.check(t, sizes)
		})
	}
}
