// Package otelcol runs a real OpenTelemetry Collector for tests: the core collector with the OTLP
// receiver (HTTP and gRPC, on free loopback ports) and the file exporter, which writes every
// batch it receives as one line of OTLP JSON. Tests send spans to it and read them back with
// WaitSpans, which polls the file with a deadline (the exporter flushes every 100 ms).
//
// The binary is test/tools/otelcol, built by test/tools/build-otelcol.sh (see Binary).
package otelcol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Collector is a running collector.
type Collector struct {
	// HTTP and GRPC are the OTLP receivers' endpoints as OTEL_EXPORTER_OTLP_ENDPOINT takes them.
	HTTP, GRPC string
	// File is the file exporter's output.
	File string
	logs bytes.Buffer
}

const startTimeout = 30 * time.Second

// Start runs a collector until the test ends. It skips the test when the binary is absent and
// building it is turned off, and fails it under CI=true (Binary).
func Start(t *testing.T) *Collector {
	t.Helper()
	bin, err := Binary(t.Logf)
	if errors.Is(err, errSkip) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	grpcAddr, httpAddr := freeAddr(t), freeAddr(t)
	c := &Collector{HTTP: "http://" + httpAddr, GRPC: "http://" + grpcAddr, File: filepath.Join(dir, "traces.jsonl")}
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
      http:
        endpoint: %s
exporters:
  file:
    path: %s
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
`, grpcAddr, httpAddr, c.File)
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = &c.logs, &c.logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("otelcol logs:\n%s", c.logs.String())
		}
	})
	deadline := time.Now().Add(startTimeout)
	for !listening(grpcAddr) || !listening(httpAddr) {
		select {
		case <-done:
			t.Fatalf("otelcol exited before listening:\n%s", c.logs.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("otelcol did not listen on %s and %s within %s", grpcAddr, httpAddr, startTimeout)
		}
	}
	return c
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// Span is one span as the file exporter wrote it. Attribute values are their JSON text without
// quotes ("200", "tools/call", "true").
type Span struct {
	TraceID, SpanID, ParentSpanID string
	Name                          string
	Kind                          int
	Attributes                    map[string]string
	Resource                      map[string]string
	StatusCode                    int
}

// Raw returns everything the collector has written so far.
func (c *Collector) Raw() string {
	b, _ := os.ReadFile(c.File)
	return string(b)
}

// Spans parses what the collector has written so far.
func (c *Collector) Spans() ([]Span, error) {
	f, err := os.Open(c.File)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Span
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var doc otlpTraces
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			// The exporter may be mid-write of the last line; it is read on the next poll.
			continue
		}
		for _, rs := range doc.ResourceSpans {
			res := attrs(rs.Resource.Attributes)
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out = append(out, Span{TraceID: s.TraceID, SpanID: s.SpanID, ParentSpanID: s.ParentSpanID, Name: s.Name,
						Kind: s.Kind, Attributes: attrs(s.Attributes), Resource: res, StatusCode: s.Status.Code})
				}
			}
		}
	}
	return out, sc.Err()
}

// WaitSpans polls the output until done accepts the spans so far, and returns them; it fails the
// test after timeout.
func (c *Collector) WaitSpans(t *testing.T, timeout time.Duration, done func([]Span) bool) []Span {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		spans, err := c.Spans()
		if err != nil {
			t.Fatalf("reading %s: %v", c.File, err)
		}
		if done(spans) {
			return spans
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector did not receive the expected spans within %s; it has %d:\n%s", timeout, len(spans), c.Raw())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The OTLP JSON encoding (opentelemetry-proto's JSON mapping): ids in hex, int64 as strings.
type otlpTraces struct {
	ResourceSpans []struct {
		Resource struct {
			Attributes []otlpAttr `json:"attributes"`
		} `json:"resource"`
		ScopeSpans []struct {
			Spans []struct {
				TraceID      string     `json:"traceId"`
				SpanID       string     `json:"spanId"`
				ParentSpanID string     `json:"parentSpanId"`
				Name         string     `json:"name"`
				Kind         int        `json:"kind"`
				Attributes   []otlpAttr `json:"attributes"`
				Status       struct {
					Code int `json:"code"`
				} `json:"status"`
			} `json:"spans"`
		} `json:"scopeSpans"`
	} `json:"resourceSpans"`
}

type otlpAttr struct {
	Key   string                     `json:"key"`
	Value map[string]json.RawMessage `json:"value"`
}

func attrs(as []otlpAttr) map[string]string {
	m := make(map[string]string, len(as))
	for _, a := range as {
		for _, v := range a.Value {
			s := string(v)
			if u, err := strconv.Unquote(s); err == nil {
				s = u
			}
			m[a.Key] = s
		}
	}
	return m
}
