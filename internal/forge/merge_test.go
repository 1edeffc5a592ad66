package forge_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"converge.dev/converge/internal/forge"
	"converge.dev/converge/internal/forgetest"
	"converge.dev/converge/internal/source/git"
	"converge.dev/converge/internal/writeback"
)

// TestGatedMergeOnGitea runs a pull request through a protected branch on
// a real Gitea: the merge is refused by name while the required status
// is missing, while no one but the author approved, and when the head
// moved since the gates looked at it; it merges when all hold. A second
// pull request is closed with a comment.
func TestGatedMergeOnGitea(t *testing.T) {
	f := forgetest.Start(t)
	repo := f.CreateRepo(t, "gated")
	base := repo.Push("init", map[string]string{"a.txt": "one\n"})
	repo.Protect("main", []string{"converge/promotion"}, 1)
	reviewer := f.CreateUser(t, "reviewer")
	repo.AddWriter(reviewer)
	ctx := context.Background()
	g, err := forge.NewGitea(repo.CloneURL, f.Token)
	if err != nil {
		t.Fatal(err)
	}
	push := func(branch, content string) string {
		co, err := writeback.Clone(ctx, repo.CloneURL, "", git.Auth{Username: f.User, Password: f.Token})
		if err != nil {
			t.Fatal(err)
		}
		defer co.Close()
		if err := os.WriteFile(filepath.Join(co.Dir, "a.txt"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		head, err := co.CommitAll("change a", "converge", "c@localhost")
		if err != nil {
			t.Fatal(err)
		}
		if err := co.Push(ctx, branch); err != nil {
			t.Fatal(err)
		}
		f.WaitBranch(t, "gated", branch, head)
		return head
	}
	head := push("promote/a", "two\n")
	pr, err := g.Open(ctx, forge.PullRequest{Base: "main", Head: "promote/a", Title: "Promote", Body: "body"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.Get(ctx, pr.Number)
	if err != nil || !st.Open || st.Merged || st.Head != head || st.Author != f.User || st.HeadBranch != "promote/a" || st.MergeBase != base {
		t.Fatalf("get: %+v %v", st, err)
	}
	if _, err := g.Merge(ctx, pr.Number, forge.Merge{Head: head}); !errors.Is(err, forge.ErrChecksPending) {
		t.Fatalf("merge without the required status: %v", err)
	}
	if err := g.SetStatus(ctx, head, forge.Status{Context: "converge/promotion", State: forge.StatusSuccess, Description: "all gates passed"}); err != nil {
		t.Fatal(err)
	}
	sts, err := g.Statuses(ctx, head)
	if err != nil || len(sts) != 1 || sts[0].State != forge.StatusSuccess || sts[0].Context != "converge/promotion" {
		t.Fatalf("statuses %+v %v", sts, err)
	}
	if _, err := g.Merge(ctx, pr.Number, forge.Merge{Head: head}); !errors.Is(err, forge.ErrNotApproved) {
		t.Fatalf("merge without an approval: %v", err)
	}
	repo.Approve(reviewer, pr.Number)
	rs, err := g.Reviews(ctx, pr.Number)
	if err != nil {
		t.Fatal(err)
	}
	if got := forge.Approvers(rs, f.User); !reflect.DeepEqual(got, []string{"reviewer"}) {
		t.Errorf("approvers %v of %+v", got, rs)
	}
	if got := forge.Approvers(rs, "reviewer"); len(got) != 0 {
		t.Errorf("the author's own approval counted: %v", got)
	}
	moved := push("promote/a", "three\n")
	if err := g.SetStatus(ctx, moved, forge.Status{Context: "converge/promotion", State: forge.StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Merge(ctx, pr.Number, forge.Merge{Head: head}); !errors.Is(err, forge.ErrHeadMoved) {
		t.Fatalf("merge of a head that moved: %v", err)
	}
	if err := g.SetBody(ctx, pr.Number, "new body"); err != nil {
		t.Fatal(err)
	}
	commit, err := g.Merge(ctx, pr.Number, forge.Merge{Head: moved, Title: "Promote", Message: "Converge-Stage: prod\n", DeleteBranch: true})
	if err != nil {
		t.Fatal(err)
	}
	st, err = g.Get(ctx, pr.Number)
	if err != nil || st.Open || !st.Merged || st.MergeCommit != commit || commit == "" || st.Body != "new body" {
		t.Fatalf("after merge: %+v %v", st, err)
	}

	push("promote/b", "four\n")
	pr2, err := g.Open(ctx, forge.PullRequest{Base: "main", Head: "promote/b", Title: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(ctx, pr2.Number, "superseded by a newer digest"); err != nil {
		t.Fatal(err)
	}
	if st, err := g.Get(ctx, pr2.Number); err != nil || st.Open || st.Merged {
		t.Fatalf("after close: %+v %v", st, err)
	}
}

func TestApproversCountTheLastReview(t *testing.T) {
	rs := []forge.Review{
		{User: "a", State: "APPROVED"}, {User: "b", State: "APPROVED"}, {User: "b", State: "REQUEST_CHANGES"},
		{User: "c", State: "APPROVED", Stale: true}, {User: "d", State: "APPROVED"}, {User: "d", State: "COMMENT"}, {User: "bot", State: "APPROVED"},
	}
	if got := forge.Approvers(rs, "bot"); !reflect.DeepEqual(got, []string{"a", "d"}) {
		t.Errorf("%v", got)
	}
}
