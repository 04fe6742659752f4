package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// coldStarts are the start-up times of mcpgate (the project without policies, SQLite): from exec
// to the first 200 of GET /readyz, polled every readyzPoll.
type coldStarts struct {
	fresh    time.Duration   // on an empty data dir: key ring and database created, migrations run
	restarts []time.Duration // on that data dir, each a new process
	idleRSS  int64           // resident set 1 s after the fresh start was ready (bytes)
}

// median of the restarts.
func (c *coldStarts) median() time.Duration {
	if len(c.restarts) == 0 {
		return c.fresh
	}
	v := slices.Clone(c.restarts)
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// worst is the slower of the fresh start and the median restart: what the target is judged on.
func (c *coldStarts) worst() time.Duration { return max(c.fresh, c.median()) }

// measureColdStarts starts mcpgate once on a new data dir and then restarts more times on it, each
// time until /readyz answers, and stops it again. Nothing else runs meanwhile (the other targets
// are idle).
func (h *harness) measureColdStarts(ctx context.Context, restarts int) (*coldStarts, error) {
	cfg := filepath.Join(h.dir, "mcpgate-config")
	data := filepath.Join(h.dir, "coldstart-data")
	c := &coldStarts{}
	for i := range restarts + 1 {
		addr, err := freePort()
		if err != nil {
			return nil, err
		}
		p, err := start(ctx, h.dir, fmt.Sprintf("coldstart-%d", i), nil, h.o.mcpgate, "serve", "--config", cfg, "--listen", addr,
			"--data-dir", data, "--log-level", "warn", "--log-format", "json")
		if err != nil {
			return nil, err
		}
		d, err := waitReadyz(ctx, p, addr)
		if err == nil && i == 0 {
			time.Sleep(time.Second)
			c.idleRSS, err = rss(p.pid())
		}
		p.stop()
		if err != nil {
			return nil, err
		}
		if i == 0 {
			c.fresh = d
		} else {
			c.restarts = append(c.restarts, d)
		}
	}
	return c, nil
}

// ms formats d in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func msList(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, strings.TrimSuffix(ms(d), " ms"))
	}
	return strings.Join(s, ", ") + " ms"
}

// mib formats bytes as MiB.
func mib(b int64) float64 { return float64(b) / (1 << 20) }
