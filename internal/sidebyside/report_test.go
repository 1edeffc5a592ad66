//go:build sidebyside

package sidebyside

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// result is one tool's run at one size.
type result struct {
	tool                      string
	cold, commit              time.Duration
	coldCPU, commitCPU        time.Duration
	steadyCPU                 time.Duration
	peak, steadyRSS           int64
	steadyAnon                int64
	coldReqs, commitReqs      Requests
	steadyReqs                Requests
	steadyWrites, steadyReads float64
	// coldDone and commitDone count the units Ready when a phase ended;
	// below n, the phase hit the limit and its time is a lower bound.
	coldDone, commitDone int
	n                    int
}

func (r result) line(objects int) string {
	return fmt.Sprintf("%-8s cold %6.1fs%s (CPU %5.1fs, %s) | commit %6.1fs%s (CPU %5.1fs, %s) | steady: %0.f writes, %0.f reads, CPU %.1fs, RSS %s (anonymous %s), peak %s",
		r.tool, r.cold.Seconds(), r.unfinished(r.coldDone), r.coldCPU.Seconds(), r.coldReqs, r.commit.Seconds(), r.unfinished(r.commitDone), r.commitCPU.Seconds(), r.commitReqs,
		r.steadyWrites, r.steadyReads, r.steadyCPU.Seconds(), mb(r.steadyRSS), mb(r.steadyAnon), mb(r.peak))
}

// unfinished marks a phase that hit the limit: its time is a lower
// bound, and the count says how far it got.
func (r result) unfinished(done int) string {
	if done == r.n {
		return ""
	}
	return fmt.Sprintf(" UNFINISHED (%d of %d Ready; the time is a lower bound)", done, r.n)
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/(1<<20)) }

// report prints the best run of each tool and the ratios.
func report(t *testing.T, s settings, n int, ssa8, ssa32 float64, all map[string][]result) {
	best := func(tool string) (result, bool) {
		rs := all[tool]
		if len(rs) == 0 {
			return result{}, false
		}
		b := rs[0]
		for _, r := range rs[1:] {
			if r.cold < b.cold {
				b = r
			}
		}
		return b, true
	}
	objs := n * s.objects
	var b strings.Builder
	fmt.Fprintf(&b, "\nN=%d units of %d ConfigMaps (%d objects), wait=%v, %d workers each, interval %s\n", n, s.objects, objs, s.wait, s.concurrency, s.interval)
	fmt.Fprintf(&b, "raw server-side apply: %.0f objects/s (8 workers), %.0f/s (32 workers)\n", ssa8, ssa32)
	cv, okC := best("converge")
	fx, okF := best("flux")
	row := func(name string, f func(r result) float64, unit string, ratio bool) {
		fmt.Fprintf(&b, "%-34s", name)
		for _, ok := range []struct {
			r  result
			ok bool
		}{{cv, okC}, {fx, okF}} {
			if ok.ok {
				fmt.Fprintf(&b, " %12.1f %-4s", f(ok.r), unit)
			} else {
				fmt.Fprintf(&b, " %17s", "-")
			}
		}
		if ratio && okC && okF && f(cv) > 0 {
			fmt.Fprintf(&b, "  Flux ÷ converge %.2f", f(fx)/f(cv))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "%-34s %17s %17s\n", "", "converge", "Flux")
	for _, r := range []result{cv, fx} {
		if r.tool != "" && (r.coldDone < n || r.commitDone < n) {
			fmt.Fprintf(&b, "%s hit the %s limit: cold %d of %d Ready, commit %d of %d; its times below are lower bounds and its ratios are at least what they say\n",
				r.tool, s.limit, r.coldDone, n, r.commitDone, n)
		}
	}
	row("cold, all Ready", func(r result) float64 { return r.cold.Seconds() }, "s", true)
	row("cold, objects/s", func(r result) float64 { return float64(objs) / r.cold.Seconds() }, "", false)
	row("cold, share of raw SSA (32)", func(r result) float64 { return 100 * float64(objs) / r.cold.Seconds() / ssa32 }, "%", false)
	row("commit to every unit, all Ready", func(r result) float64 { return r.commit.Seconds() }, "s", true)
	row("CPU, cold", func(r result) float64 { return r.coldCPU.Seconds() }, "s", true)
	row("CPU, commit", func(r result) float64 { return r.commitCPU.Seconds() }, "s", true)
	row("API requests, cold", func(r result) float64 { return r.coldReqs.Reads() + r.coldReqs.Writes() }, "", true)
	row("API requests, commit", func(r result) float64 { return r.commitReqs.Reads() + r.commitReqs.Writes() }, "", true)
	if s.steady > 0 {
		row(fmt.Sprintf("steady %s: writes", s.steady), func(r result) float64 { return r.steadyWrites }, "", false)
		row(fmt.Sprintf("steady %s: reads", s.steady), func(r result) float64 { return r.steadyReads }, "", false)
		row(fmt.Sprintf("steady %s: CPU", s.steady), func(r result) float64 { return r.steadyCPU.Seconds() }, "s", true)
		row("steady RSS", func(r result) float64 { return float64(r.steadyRSS) / (1 << 20) }, "MB", true)
		row("steady RSS, anonymous", func(r result) float64 { return float64(r.steadyAnon) / (1 << 20) }, "MB", true)
	}
	row("peak RSS", func(r result) float64 { return float64(r.peak) / (1 << 20) }, "MB", true)
	for _, r := range []result{cv, fx} {
		if r.tool != "" {
			fmt.Fprintf(&b, "%s requests: cold {%s}\n  commit {%s}\n  steady {%s}\n", r.tool, r.coldReqs.Detail(), r.commitReqs.Detail(), r.steadyReqs.Detail())
		}
	}
	fmt.Print(b.String())
	t.Log(b.String())
}
