package git

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"converge.dev/converge/internal/gittest"
	"converge.dev/converge/internal/source"
)

// BenchmarkMaterialise10000 writes the checkout of a commit of 10,000
// files in 1,000 folders, as the controller does once per new revision
// of a monorepo before any unit on it renders: its time is part of every
// push's way to the cluster.
func BenchmarkMaterialise10000(b *testing.B) {
	p := gittest.NewRepo(b, b.TempDir()+"/mono.git")
	files := map[string]string{}
	for i := range 1000 {
		for j := range 10 {
			files[fmt.Sprintf("apps/a-%04d/cm-%02d.yaml", i, j)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: u-%04d-%02d}\ndata: {revision: cold}\n", i, j)
		}
	}
	head := p.Commit("10,000 files", files)
	p.Publish()
	// Packed, as a fetched clone is, and opened as Fetch opens it.
	if out, err := exec.Command("git", "-C", p.Bare, "repack", "-a", "-d", "-q").CombinedOutput(); err != nil {
		b.Fatalf("git repack: %v\n%s", err, out)
	}
	st := store(p.Bare)
	defer st.Close()
	r, err := gogit.Open(st, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		f := New(Options{CacheDir: filepath.Join(b.TempDir(), fmt.Sprint(i)), MaxTrees: -1})
		dir, err := f.materialise(r, head, plumbing.ZeroHash)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "apps/a-0999/cm-09.yaml")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPush10000 is the source's part of a push to a monorepo of
// 10,000 files: a commit changing one file, then a Fetch of the branch
// over HTTP from a real git server, as a webhook makes the controller do
// it. It reports the bytes each fetch adds to the clone.
func BenchmarkPush10000(b *testing.B) {
	srv := gittest.NewServer(b, "", "")
	p, url := srv.NewRepo(b, "mono.git")
	files := map[string]string{}
	for i := range 1000 {
		for j := range 10 {
			files[fmt.Sprintf("apps/a-%04d/cm-%02d.yaml", i, j)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: u-%04d-%02d}\ndata: {revision: cold}\n", i, j)
		}
	}
	p.Commit("10,000 files", files)
	p.Publish()
	ctx := context.Background()
	f := New(Options{CacheDir: b.TempDir()})
	if _, err := f.Fetch(ctx, url, source.Ref{Branch: "main"}, Auth{}); err != nil {
		b.Fatal(err)
	}
	size0, err := cloneSize(f.repoDir(url))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		head := p.Commit(fmt.Sprint("push ", i), map[string]string{"apps/a-0007/cm-03.yaml": fmt.Sprintf("data: {push: %d}\n", i)})
		p.Publish()
		f.Forget(url)
		b.StartTimer()
		snap, err := f.Fetch(ctx, url, source.Ref{Branch: "main"}, Auth{})
		if err != nil {
			b.Fatal(err)
		}
		if snap.Revision != head.String() {
			b.Fatalf("fetched %s, pushed %s", snap.Revision, head)
		}
	}
	b.StopTimer()
	size, err := cloneSize(f.repoDir(url))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(size-size0)/float64(b.N), "clone-bytes/op")
}
