// Package controlplane provides the kube-controlplane binary: etcd,
// kube-apiserver, kube-controller-manager and a fake kubelet in one process,
// built from the nested module in the repository's controlplane/ folder.
//
// The binary is built on first use with the machine's Go toolchain and
// cached by a hash of its sources, so every later call costs a few file
// reads. A file lock keeps concurrent test packages from building it twice.
package controlplane

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// ModulePath is the module path of the nested control-plane module; Locate
// checks it so that an unrelated go.mod is never built.
const ModulePath = "converge.dev/converge/controlplane"

// KubeVersion is the Kubernetes version the binary embeds and reports.
const KubeVersion = "v1.37.2"

// ldflags set the server version: without them the server reports
// v0.0.0-master+$Format:%H$, which kubectl cannot parse and Helm's
// kubeVersion checks reject. Only the link step depends on them.
var ldflags = "-s -w" +
	" -X k8s.io/component-base/version.gitVersion=" + KubeVersion +
	" -X k8s.io/component-base/version.gitMajor=1" +
	" -X k8s.io/component-base/version.gitMinor=37"

// SourceEnv names the environment variable that points at the nested
// module, for a converge binary that runs away from its checkout.
const SourceEnv = "CONVERGE_CONTROLPLANE_SRC"

// ErrSourceNotFound means no control-plane source could be found.
var ErrSourceNotFound = errors.New("control-plane source not found")

// Locate finds the nested module's folder: $CONVERGE_CONTROLPLANE_SRC, then
// the checkout this package was compiled from, then the working directory
// and its parents.
func Locate() (string, error) {
	if dir := os.Getenv(SourceEnv); dir != "" {
		if err := checkModule(dir); err != nil {
			return "", fmt.Errorf("%s=%s: %w", SourceEnv, dir, err)
		}
		return dir, nil
	}
	var candidates []string
	if _, file, _, ok := runtime.Caller(0); ok {
		candidates = append(candidates, filepath.Join(filepath.Dir(file), "..", "..", "controlplane"))
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			candidates = append(candidates, filepath.Join(dir, "controlplane"))
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	for _, dir := range candidates {
		if checkModule(dir) == nil {
			return filepath.Clean(dir), nil
		}
	}
	return "", fmt.Errorf("%w: run converge from its checkout, or set %s to the checkout's controlplane folder", ErrSourceNotFound, SourceEnv)
}

func checkModule(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return fmt.Errorf("read go.mod: %w", err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	if strings.TrimSpace(first) != "module "+ModulePath {
		return fmt.Errorf("go.mod is not module %s", ModulePath)
	}
	return nil
}

// sourceHash hashes what decides the binary's content: the module files,
// every non-test Go file, and the link flags.
func sourceHash(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return "", err
	}
	names = append(names, filepath.Join(dir, "go.mod"), filepath.Join(dir, "go.sum"))
	sort.Strings(names)
	h := sha256.New()
	fmt.Fprintf(h, "ldflags %s\n", ldflags)
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		data, err := os.ReadFile(name)
		if err != nil {
			return "", fmt.Errorf("hash sources: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(name), len(data))
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil))[:20], nil
}
