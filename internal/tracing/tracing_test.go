package tracing

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Settings
		wantErr string
	}{
		{name: "nothing set: off", env: nil, want: Settings{}},
		{name: "endpoint: on over http/protobuf", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, want: Settings{On: true, Protocol: "http/protobuf"}},
		{name: "traces endpoint: on", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, want: Settings{On: true, Protocol: "http/protobuf"}},
		{name: "grpc", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, want: Settings{On: true, Protocol: "grpc"}},
		{name: "traces protocol wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf"}, want: Settings{On: true, Protocol: "http/protobuf"}},
		{name: "exporter otlp without endpoint: on (the default endpoint)", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, want: Settings{On: true, Protocol: "http/protobuf"}},
		{name: "exporter none wins over an endpoint", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, want: Settings{}},
		{name: "sdk disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, want: Settings{}},
		{name: "unsupported exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: `OTEL_TRACES_EXPORTER: "zipkin" is not supported (otlp or none)`},
		{name: "unsupported protocol", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, wantErr: `OTEL_EXPORTER_OTLP_PROTOCOL: "http/json" is not supported (grpc or http/protobuf)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("FromEnv = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// TestOffWithoutEnv: with no OTEL_* variable Setup starts nothing, the gateway gets no tracer,
// and starting a child span costs nothing.
func TestOffWithoutEnv(t *testing.T) {
	for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"} {
		t.Setenv(k, "") // restored after the test; empty reads as unset
	}
	p, err := Setup(context.Background(), slog.Default(), "test")
	if err != nil || p != nil {
		t.Fatalf("Setup = %v, %v; want nil, nil", p, err)
	}
	if tr := p.Tracer(); tr != nil {
		t.Fatalf("Tracer() = %v, want nil", tr)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		c, span := Start(ctx, "x", trace.SpanKindInternal)
		End(span, nil)
		if c != ctx || span != nil {
			t.Fatal("Start without a recording parent returned a span")
		}
	})
	if allocs != 0 {
		t.Fatalf("Start without a parent: %v allocations, want 0", allocs)
	}
}

func TestSetupUnsupported(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "jaeger")
	_, err := Setup(context.Background(), slog.Default(), "test")
	if err == nil || !strings.Contains(err.Error(), "OTEL_TRACES_EXPORTER") {
		t.Fatalf("err = %v", err)
	}
}
