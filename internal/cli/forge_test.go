package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"github.com/rogpeppe/go-internal/testscript"

	"converge.dev/converge/internal/forgetest"
	"converge.dev/converge/internal/gittest"
)

// forge is the scripts' Gitea, started by TestScripts.
var forge *forgetest.Forge

// forgePush NAME DIR creates repository NAME on the scripts' Gitea (once)
// and pushes the files of $WORK/DIR to its main branch as one commit. It
// sets FORGE_REPO to the clone URL.
func forgePush(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: forge-push NAME DIR")
	}
	name, src := args[0], ts.MkAbs(args[1])
	clone := forge.URL + forge.User + "/" + name + ".git"
	work := filepath.Join(ts.Getenv("WORK"), ".forge-"+name)
	r, err := gogit.PlainOpen(work)
	if errors.Is(err, gogit.ErrRepositoryNotExists) {
		body, _ := json.Marshal(map[string]any{"name": name, "default_branch": "main"})
		req, _ := http.NewRequest("POST", forge.URL+"api/v1/user/repos", bytes.NewReader(body))
		req.Header.Set("Authorization", "token "+forge.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, herr := http.DefaultClient.Do(req)
		ts.Check(herr)
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			ts.Fatalf("create repository: %s: %s", resp.Status, data)
		}
		r, err = gogit.PlainInitWithOptions(work, &gogit.PlainInitOptions{
			InitOptions: gogit.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")}})
		ts.Check(err)
		_, err = r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{clone}})
	}
	ts.Check(err)
	ts.Check(copyDir(src, filepath.Join(work, args[1])))
	wt, err := r.Worktree()
	ts.Check(err)
	ts.Check(wt.AddWithOptions(&gogit.AddOptions{All: true}))
	_, err = wt.Commit("forge-push "+args[1], &gogit.CommitOptions{Author: gittest.Signature(), AllowEmptyCommits: true})
	ts.Check(err)
	err = r.Push(&gogit.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{"refs/heads/main:refs/heads/main"},
		Auth: &githttp.BasicAuth{Username: forge.User, Password: forge.Token}})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		ts.Fatalf("push: %v", err)
	}
	ts.Setenv("FORGE_REPO", clone)
}

// forgePulls REPO prints how many pull requests are open in the
// repository, then each: number, head branch and title, and its body.
func forgePulls(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: forge-pulls REPO")
	}
	req, _ := http.NewRequest("GET", forge.URL+"api/v1/repos/"+forge.User+"/"+args[0]+"/pulls?state=open", nil)
	req.Header.Set("Authorization", "token "+forge.Token)
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	var pulls []struct {
		Number int    `json:"number"`
		Title  string `json:"title"`
		Body   string `json:"body"`
		Head   struct {
			Ref string `json:"ref"`
		} `json:"head"`
	}
	ts.Check(json.NewDecoder(resp.Body).Decode(&pulls))
	fmt.Fprintf(ts.Stdout(), "%d open\n", len(pulls))
	for _, p := range pulls {
		fmt.Fprintf(ts.Stdout(), "#%d %s %s\n%s\n", p.Number, p.Head.Ref, p.Title, p.Body)
	}
}

func copyDir(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
}

// forgeFile REPO BRANCH PATH prints a file as the forge holds it on
// branch.
func forgeFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: forge-file REPO BRANCH PATH")
	}
	req, _ := http.NewRequest("GET", forge.URL+"api/v1/repos/"+forge.User+"/"+args[0]+"/raw/"+args[2]+"?ref="+url.QueryEscape(args[1]), nil)
	req.Header.Set("Authorization", "token "+forge.Token)
	resp, err := http.DefaultClient.Do(req)
	ts.Check(err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		ts.Fatalf("%s: %s", resp.Status, data)
	}
	ts.Stdout().Write(data)
}
