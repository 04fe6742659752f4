package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
)

// counters are the cumulative counts read around a measured window on the auth paths: the
// database's statements, the upstream authorization server's grants, and the gateway's own
// /metrics. A field is -1 when it is not measured for the target.
type counters struct {
	dbStatements  int64 // pg_stat_statements calls of the target's database
	asRefreshes   int64 // refresh_token grants the upstream's authorization server answered
	asRefused     int64 // /mcp requests the upstream refused (401)
	gwRefreshOK   int64 // mcpgate_upstream_refreshes_total{outcome="success"}
	gwRefreshMore int64 // mcpgate_upstream_refreshes_total, every other outcome
	gwReplays     int64 // mcpgate_upstream_replays_total
	auditWritten  int64 // mcpgate_audit_rows_written_total
	auditDropped  int64 // mcpgate_audit_rows_dropped_total
}

func noCounters() counters { return counters{-1, -1, -1, -1, -1, -1, -1, -1} }

// sub returns c − before, field by field (-1 stays -1).
func (c counters) sub(before counters) counters {
	d := func(a, b int64) int64 {
		if a < 0 || b < 0 {
			return -1
		}
		return a - b
	}
	return counters{d(c.dbStatements, before.dbStatements), d(c.asRefreshes, before.asRefreshes), d(c.asRefused, before.asRefused),
		d(c.gwRefreshOK, before.gwRefreshOK), d(c.gwRefreshMore, before.gwRefreshMore), d(c.gwReplays, before.gwReplays),
		d(c.auditWritten, before.auditWritten), d(c.auditDropped, before.auditDropped)}
}

// add sums a and b field by field (-1 when either is -1).
func (c counters) add(b counters) counters {
	s := func(x, y int64) int64 {
		if x < 0 || y < 0 {
			return -1
		}
		return x + y
	}
	return counters{s(c.dbStatements, b.dbStatements), s(c.asRefreshes, b.asRefreshes), s(c.asRefused, b.asRefused),
		s(c.gwRefreshOK, b.gwRefreshOK), s(c.gwRefreshMore, b.gwRefreshMore), s(c.gwReplays, b.gwReplays),
		s(c.auditWritten, b.auditWritten), s(c.auditDropped, b.auditDropped)}
}

var counterClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

// readCounters reads t's counters now.
func readCounters(ctx context.Context, t *target, pg *pgCluster) (counters, error) {
	c := noCounters()
	var err error
	if t.db != "" && pg != nil {
		if c.dbStatements, err = pg.statements(ctx, t.db); err != nil {
			return c, fmt.Errorf("%s: pg_stat_statements: %w", t.name, err)
		}
	}
	if t.up != nil && t.up.oauth {
		var s upstream.Stats
		if err := getJSON(ctx, "http://"+t.up.addr+upstream.StatsPath, &s); err != nil {
			return c, fmt.Errorf("%s: upstream stats: %w", t.name, err)
		}
		c.asRefreshes, c.asRefused = s.RefreshGrants, s.Refused
	}
	if t.gateway {
		m, err := scrapeMetrics(ctx, "http://"+t.addr+"/metrics")
		if err != nil {
			return c, fmt.Errorf("%s: /metrics: %w", t.name, err)
		}
		c.gwRefreshOK, c.gwRefreshMore, c.gwReplays, c.auditWritten, c.auditDropped = 0, 0, 0, 0, 0
		for _, s := range m {
			switch {
			case s.name == "mcpgate_upstream_refreshes_total" && s.labels["outcome"] == "success":
				c.gwRefreshOK += int64(s.value)
			case s.name == "mcpgate_upstream_refreshes_total":
				c.gwRefreshMore += int64(s.value)
			case s.name == "mcpgate_upstream_replays_total":
				c.gwReplays += int64(s.value)
			case s.name == "mcpgate_audit_rows_written_total":
				c.auditWritten += int64(s.value)
			case s.name == "mcpgate_audit_rows_dropped_total":
				c.auditDropped += int64(s.value)
			}
		}
	}
	return c, nil
}

func getJSON(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := counterClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// sampleLine is one sample of the Prometheus text format.
type sampleLine struct {
	name   string
	labels map[string]string
	value  float64
}

// scrapeMetrics reads a Prometheus text exposition.
func scrapeMetrics(ctx context.Context, u string) ([]sampleLine, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := counterClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	var out []sampleLine
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if s, ok := parseSample(sc.Text()); ok {
			out = append(out, s)
		}
	}
	return out, sc.Err()
}

// parseSample parses `name{a="x",b="y"} value` (labels optional); comments are not samples.
func parseSample(line string) (sampleLine, bool) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return sampleLine{}, false
	}
	s := sampleLine{labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
		s.name = line[:i]
		end := strings.LastIndexByte(line, '}')
		if end < i {
			return sampleLine{}, false
		}
		for pair := range strings.SplitSeq(line[i+1:end], ",") {
			k, v, ok := strings.Cut(pair, "=")
			if ok {
				s.labels[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
			}
		}
		rest = line[end+1:]
	} else {
		name, r, ok := strings.Cut(line, " ")
		if !ok {
			return sampleLine{}, false
		}
		s.name, rest = name, r
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return sampleLine{}, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return sampleLine{}, false
	}
	s.value = v
	return s, true
}
