package cli_test

import (
	"errors"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/rogpeppe/go-internal/testscript"

	"converge.dev/converge/internal/gittest"
)

// gitCommit DIR commits everything in $WORK/DIR (a Git working tree,
// created on first use) and publishes it to the bare repository
// $WORK/DIR.git, which scripts use as file://$WORK/DIR.git.
func gitCommit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: gitcommit DIR")
	}
	dir := ts.MkAbs(args[0])
	bare := dir + ".git"
	r, err := gogit.PlainOpen(dir)
	if errors.Is(err, gogit.ErrRepositoryNotExists) {
		r, err = gogit.PlainInitWithOptions(dir, &gogit.PlainInitOptions{
			InitOptions: gogit.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
		})
		ts.Check(err)
		_, err = gogit.PlainInit(bare, true)
		ts.Check(err)
		_, err = r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{bare}})
	}
	ts.Check(err)
	wt, err := r.Worktree()
	ts.Check(err)
	ts.Check(wt.AddWithOptions(&gogit.AddOptions{All: true}))
	_, err = wt.Commit("script commit", &gogit.CommitOptions{Author: gittest.Signature(), AllowEmptyCommits: true})
	ts.Check(err)
	err = r.Push(&gogit.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{"+refs/heads/*:refs/heads/*"}, Force: true})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		ts.Fatalf("push: %v", err)
	}
	b, err := gogit.PlainOpen(bare)
	ts.Check(err)
	ts.Check(b.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName("main"))))
}
