// Package tracing turns OpenTelemetry traces on from the standard OTEL_* environment variables
// and holds what the rest of the gateway shares about spans: the tracer's name, the W3C trace
// context propagator, and the helper that starts a child span only under a recording parent.
//
// Only cmd/mcpgate calls Setup. Every other package uses the OpenTelemetry API alone: the
// gateway starts the request span with the tracer serve hands it (gateway.Settings.Tracer, nil
// when tracing is off); everything below it starts children with Start, which takes the tracer
// from the parent span's own provider and does nothing — no allocation — when there is no
// recording parent. So with tracing off no request pays for it
// (docs/architecture.md#traces).
//
// The exporter is chosen here rather than by go.opentelemetry.io/contrib/exporters/autoexport:
// autoexport also links the console, Prometheus and OTLP metric and log exporters, for a choice
// between two trace exporters that FromEnv makes in a few lines.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Name is the instrumentation scope of every span the gateway starts.
const Name = "github.com/mcpgate/mcpgate"

// DefaultServiceName is service.name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say
// otherwise.
const DefaultServiceName = "mcpgate"

// Propagator reads and writes the W3C traceparent and tracestate headers.
var Propagator propagation.TraceContext

// Provider is the running trace pipeline: a batching OTLP exporter behind an SDK tracer provider.
// A nil *Provider is tracing off.
type Provider struct {
	tp       *sdktrace.TracerProvider
	protocol string
}

// Settings is what Setup decided from the environment.
type Settings struct {
	On       bool
	Protocol string // "grpc" or "http/protobuf"
}

// FromEnv decides from getenv (os.Getenv) whether traces are exported and how. Tracing is on when
// OTEL_TRACES_EXPORTER is "otlp", or when it is unset and an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); OTEL_SDK_DISABLED=true and
// OTEL_TRACES_EXPORTER=none turn it off.
func FromEnv(getenv func(string) string) (Settings, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return Settings{}, nil
	}
	switch exp := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return Settings{}, nil
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return Settings{}, nil
		}
	case "otlp":
	default:
		return Settings{}, fmt.Errorf("OTEL_TRACES_EXPORTER: %q is not supported (otlp or none)", exp)
	}
	protocol := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	name := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	if protocol == "" {
		protocol, name = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL")), "OTEL_EXPORTER_OTLP_PROTOCOL"
	}
	switch protocol {
	case "":
		protocol = "http/protobuf" // the specification's default
	case "grpc", "http/protobuf":
	default:
		return Settings{}, fmt.Errorf("%s: %q is not supported (grpc or http/protobuf)", name, protocol)
	}
	return Settings{On: true, Protocol: protocol}, nil
}

// Setup starts the trace pipeline the environment asks for, or returns nil (tracing off). The
// exporters read the rest of OTEL_EXPORTER_OTLP_* themselves (endpoint, headers, TLS, timeout,
// compression), the SDK reads OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_*, and the resource takes
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES. Export failures are logged at Warn.
func Setup(ctx context.Context, log *slog.Logger, version string) (*Provider, error) {
	s, err := FromEnv(os.Getenv)
	if err != nil || !s.On {
		return nil, err
	}
	var exp sdktrace.SpanExporter
	if s.Protocol == "grpc" {
		exp, err = otlptracegrpc.New(ctx)
	} else {
		exp, err = otlptracehttp.New(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("creating the OTLP %s trace exporter: %w", s.Protocol, err)
	}
	// Later detectors win: the default name, then what OTEL_SERVICE_NAME and
	// OTEL_RESOURCE_ATTRIBUTES say.
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", DefaultServiceName), attribute.String("service.version", version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("reading OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("exporting traces", "error", err)
	}))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{tp: tp, protocol: s.Protocol}, nil
}

// Tracer returns the tracer of the gateway's request spans, or nil when p is nil (tracing off).
func (p *Provider) Tracer() trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tp.Tracer(Name)
}

// Protocol is the OTLP protocol in use ("grpc" or "http/protobuf"), "" when off.
func (p *Provider) Protocol() string {
	if p == nil {
		return ""
	}
	return p.protocol
}

// Shutdown exports the spans still queued and stops the exporter; ctx bounds the wait.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.tp.Shutdown(ctx)
}

// Start starts a child span of the recording span in ctx, from that span's own provider. Without
// one (tracing off, or the trace not sampled) it returns ctx and a nil span and allocates nothing;
// End and the other helpers accept the nil span.
func Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, nil
	}
	return parent.TracerProvider().Tracer(Name).Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// End ends span (nil: nothing to do), recording err as the span's error status. The error's text
// is what the log would show, and the log holds no secret (docs/architecture.md#never-logged).
func End(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// Recording reports whether ctx carries a recording span: whether Start would start one. Callers
// whose span attributes cost something to build ask first.
func Recording(ctx context.Context) bool { return trace.SpanFromContext(ctx).IsRecording() }

// AttrUpstreamID labels the spans about one upstream (token lookup and refresh, discovery,
// registration) with its configured id.
const AttrUpstreamID = attribute.Key("mcpgate.upstream_id")

// TraceID is the id of the recording trace ctx belongs to, for log lines and problem bodies; ""
// when the request is not traced.
func TraceID(ctx context.Context) string {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return ""
	}
	return span.SpanContext().TraceID().String()
}
