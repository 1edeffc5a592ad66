package cli

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	sigsyaml "sigs.k8s.io/yaml"

	"converge.dev/converge/internal/promotion"
)

func newEvidenceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "evidence",
		Short: "Record promotion evidence for an image digest in a deploy repository",
	}
	cmd.AddCommand(newEvidenceAddCmd())
	return cmd
}

func newEvidenceAddCmd() *cobra.Command {
	var dir, digest, typ, uri, file, result, migration, summary, output string
	var critical int
	cmd := &cobra.Command{
		Use:   "add --digest sha256:... --type T --uri U [--file F]",
		Short: "Write one evidence item for a digest into a deploy repository's working tree, for CI to commit",
		Long: `Add writes .converge/evidence/sha256-<digest>/<type>.yaml in the working
tree at --dir (default the current folder). CI commits it with the change
that moves the first stage; every promotion pull request links it, its
gates read it (build: tests; scan: critical findings; change-ticket), and
the promotion record pins its Git blob, so a later edit fails the evidence
gate of the next stage.

Types: ` + strings.Join(promotion.EvidenceTypes, ", ") + `.
--file attaches a document (an SBOM, a report): it is copied beside the
item and pinned by its blob.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !promotion.ValidDigest(digest) {
				return fmt.Errorf("--digest %q: want sha256:<64 hex>", digest)
			}
			if !promotion.KnownEvidence(typ) {
				return fmt.Errorf("--type %q: want one of %s", typ, strings.Join(promotion.EvidenceTypes, ", "))
			}
			item := promotion.Evidence{Type: typ, Subject: digest, URI: uri, Result: result, Migration: migration, Summary: summary,
				RecordedAt: time.Now().UTC().Truncate(time.Second)}
			if cmd.Flags().Changed("critical") {
				item.Critical = &critical
			}
			switch migration {
			case "", "none", "reversible", "irreversible":
			default:
				return fmt.Errorf("--migration %q: want none, reversible or irreversible", migration)
			}
			rel := promotion.EvidencePath(digest, typ)
			if msg := item.Check(rel, digest); msg != "" {
				return fmt.Errorf("%s", msg)
			}
			if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(promotion.EvidenceDir(digest))), 0o755); err != nil {
				return err
			}
			if file != "" {
				data, err := os.ReadFile(file)
				if err != nil {
					return fmt.Errorf("--file: %w", err)
				}
				item.File = path.Join(promotion.EvidenceDir(digest), typ+"-"+filepath.Base(file))
				item.FileBlob = promotion.BlobSHA(data)
				if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(item.File)), data, 0o644); err != nil {
					return err
				}
			}
			data, err := sigsyaml.Marshal(item)
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(rel)), data, 0o644); err != nil {
				return err
			}
			if ok, err := writeStructured(cmd.OutOrStdout(), output, map[string]any{"path": rel, "blob": promotion.BlobSHA(data), "evidence": item}); ok {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (blob %s)\n", rel, promotion.BlobSHA(data)[:12])
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dir, "dir", ".", "the deploy repository's working tree")
	fs.StringVar(&digest, "digest", "", "the image digest the evidence is about (required)")
	fs.StringVar(&typ, "type", "", "the evidence type (required)")
	fs.StringVar(&uri, "uri", "", "where the evidence is (a CI run, a scan report)")
	fs.StringVar(&file, "file", "", "a document to attach")
	fs.StringVar(&result, "result", "", "passed or failed (build, scan, smoke)")
	fs.IntVar(&critical, "critical", 0, "critical findings (scan)")
	fs.StringVar(&migration, "migration", "", "none, reversible or irreversible (migration)")
	fs.StringVar(&summary, "summary", "", "one line for people")
	fs.StringVarP(&output, "output", "o", "", "json or yaml")
	cmd.MarkFlagRequired("digest")
	cmd.MarkFlagRequired("type")
	return cmd
}
