package sidebyside

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
)

// FreeAddr is a loopback address with a port free at the time of the
// call, for a controller's --metrics-addr.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Profile saves a Go profile that the converge controller at addr (its
// --metrics-addr) serves: name is "heap", or "profile?seconds=N" for CPU,
// which returns after N seconds.
func Profile(ctx context.Context, addr, name, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/debug/pprof/"+name, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", name, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", name, err)
	}
	return f.Close()
}

// Top is the first n lines of `go tool pprof -top` for a saved profile,
// with extra arguments such as "-sample_index=inuse_space".
func Top(path string, n int, args ...string) (string, error) {
	cmd := exec.Command("go", append(append([]string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", n)}, args...), path)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("pprof %s: %w\n%s", path, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Scrape returns the lines of the Prometheus text at http://addr/metrics
// that start with one of the prefixes, for a log.
func Scrape(ctx context.Context, addr string, prefixes ...string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				b.WriteString(line + "\n")
				break
			}
		}
	}
	return b.String(), nil
}
