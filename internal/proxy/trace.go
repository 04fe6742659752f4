package proxy

import (
	"context"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mcpgate/mcpgate/internal/jsonspan"
	"github.com/mcpgate/mcpgate/internal/tracing"
)

// The upstream call's span (docs/architecture.md#traces): a client span, child of the request
// span, from the request's being forwarded to the end of the answer (a stream included). The
// upstream gets its traceparent. Started only under a recording request span.

const (
	attrMCPMethod  = attribute.Key("mcp.method")
	attrMCPTool    = attribute.Key("mcp.tool")
	attrServerAddr = attribute.Key("server.address")
	attrStatus     = attribute.Key("http.response.status_code")
)

// startSpan starts the upstream call's span under parent (recording) and returns the context
// carrying it. The MCP method, and a tools/call's tool name, label both spans; the target's
// host is the only part of its URL recorded (its user info may be a credential).
func (cl *call) startSpan(ctx context.Context, parent trace.Span) context.Context {
	method, tool := "", ""
	switch {
	case cl.capOn && cl.cap.method != "":
		method = cl.cap.method
		if method == "tools/call" {
			tool = strings.Clone(cl.cap.name) // the name shares the call's body; the span outlives it
		}
	case cl.capOn:
		method = listMethod(cl.cap.listOf)
	case cl.eng.mcp:
		method = mcpMethod(cl.body)
	}
	attrs := []attribute.KeyValue{attrServerAddr.String(cl.target.Host)}
	name := "upstream"
	if method != "" {
		attrs = append(attrs, attrMCPMethod.String(method))
		name = "upstream " + method
	}
	if tool != "" {
		attrs = append(attrs, attrMCPTool.String(tool))
	}
	parent.SetAttributes(attrs[1:]...)
	ctx, cl.span = parent.TracerProvider().Tracer(tracing.Name).Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

// listMethod is the list request whose answer lists the names of call (capCall.listOf).
func listMethod(call string) string {
	switch call {
	case "tools/call":
		return "tools/list"
	case "prompts/get":
		return "prompts/list"
	case "resources/read":
		return "resources/list"
	}
	return ""
}

// mcpMethod is a JSON-RPC message's method, "" for anything else (a batch, a response).
func mcpMethod(body []byte) string {
	var top [8]jsonspan.Member
	ms, err := jsonspan.Members(body, top[:0])
	if err != nil {
		return ""
	}
	for i := range ms {
		if ms[i].Is("method") {
			m, _ := jsonspan.StringValue(body[ms[i].VS:ms[i].VE])
			return m
		}
	}
	return ""
}

// injectTraceparent writes the request's trace context into the outbound headers, replacing the
// client's traceparent and tracestate. Without tracing the request carries no span context and
// the client's headers pass through untouched.
func injectTraceparent(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	h.Del("Tracestate")
	tracing.Propagator.Inject(ctx, propagation.HeaderCarrier(h))
}
