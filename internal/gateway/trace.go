package gateway

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/tracing"
)

// Spans of the gateway (docs/architecture.md#traces): the request span, started here when serve
// handed the gateway a tracer (Settings.Tracer), as a child of the client's traceparent when it
// sent one; and one span per inbound policy. Everything else adds children to them through
// tracing.Start. With no tracer the request path does none of this: no allocation, no lookup.

// Span attribute keys the gateway and the proxy set. Never a token, a header value, a subject or
// a session id.
const (
	attrRoute       = attribute.Key("http.route")
	attrOperationID = attribute.Key("mcpgate.operation_id")
	attrRequestID   = attribute.Key("mcpgate.request_id")
	attrPolicy      = attribute.Key("mcpgate.policy")
	attrPolicyKind  = attribute.Key("mcpgate.policy.export")
	attrStatus      = attribute.Key("http.response.status_code")
	attrReason      = attribute.Key("mcpgate.reason_code")
)

// policySpan is what a route's inbound policy's span is named and labelled with, worked out once.
type policySpan struct {
	name  string
	attrs []attribute.KeyValue
}

func newPolicySpan(name, export string) policySpan {
	return policySpan{name: "policy " + name, attrs: []attribute.KeyValue{attrPolicy.String(name), attrPolicyKind.String(export)}}
}

// startRequest starts the request span and returns the request carrying it. The client's
// traceparent, when valid, becomes the parent: the gateway joins the client's trace.
func (s *Server) startRequest(r *http.Request, rid string) (*http.Request, trace.Span) {
	ctx := tracing.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := s.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", r.URL.Path),
		attrRequestID.String(rid),
	))
	return r.WithContext(ctx), span
}

// isProbe reports whether path is a health probe, which gets no span: an orchestrator's probes
// every few seconds would outnumber the traces anyone looks at.
func isProbe(path string) bool { return path == "/healthz" || path == "/readyz" }

// endRequest names the request span after its route, records the answer and ends it.
func endRequest(span trace.Span, r *http.Request, rt *route, status int) {
	if rt != nil {
		span.SetName(r.Method + " " + rt.cfg.Path)
		span.SetAttributes(attrRoute.String(rt.cfg.Path))
		if rt.info.OperationID != "" {
			span.SetAttributes(attrOperationID.String(rt.info.OperationID))
		}
	}
	span.SetAttributes(attrStatus.Int(status))
	if status >= 500 {
		span.SetStatus(codes.Error, http.StatusText(status))
	}
	span.End()
}

// endPolicy ends a policy's span. A refusal (a 4xx: no key, wrong key) is the policy doing its
// job and is recorded by its status alone; only a failure of the gateway's (5xx) is an error.
func endPolicy(span trace.Span, err error) {
	if err == nil {
		span.End()
		return
	}
	pe := problem.From(err)
	span.SetAttributes(attrStatus.Int(pe.Status))
	if pe.Reason != "" {
		span.SetAttributes(attrReason.String(pe.Reason))
	}
	if pe.Status >= 500 {
		tracing.End(span, err)
		return
	}
	span.End()
}
