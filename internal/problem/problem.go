// Package problem is the gateway's one way of turning errors into responses: RFC 7807
// application/problem+json bodies that carry a request id and never an internal cause.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// ContentType is the media type of every problem body.
const ContentType = "application/problem+json"

// Error is an error that carries the HTTP status and the message a client may see, kept apart
// from the cause, which is only logged.
type Error struct {
	Status int    // HTTP status code
	Detail string // safe for the client
	// Reason is a stable machine-readable code (missing_token, upstream_timeout, …), optional.
	Reason string
	// Header holds extra response headers (Allow, Retry-After, WWW-Authenticate).
	Header http.Header
	// Extra holds additional top-level members of the problem body.
	Extra map[string]any
	Err   error // cause, for the log only
}

// New returns an *Error with the status, client-facing detail and cause.
func New(status int, detail string, cause error) *Error {
	return &Error{Status: status, Detail: detail, Err: cause}
}

// WithReason sets the reason code and returns e.
func (e *Error) WithReason(code string) *Error { e.Reason = code; return e }

// WithHeader adds a response header and returns e.
func (e *Error) WithHeader(key, value string) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.Header.Add(key, value)
	return e
}

func (e *Error) Error() string {
	msg := strconv.Itoa(e.Status) + " " + e.Detail
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// Body is the RFC 7807 document, with Zuplo's trace member.
type Body struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail,omitempty"`
	Instance string         `json:"instance,omitempty"`
	Reason   string         `json:"reasonCode,omitempty"`
	Trace    Trace          `json:"trace"`
	Extra    map[string]any `json:"-"`
}

// Trace identifies the request in support tickets and logs.
type Trace struct {
	Timestamp string `json:"timestamp"`
	RequestID string `json:"requestId"`
	// TraceID is the OpenTelemetry trace id when the request was traced (docs/architecture.md#traces).
	TraceID string `json:"traceId,omitempty"`
}

// MarshalJSON flattens Extra into the top level.
func (b Body) MarshalJSON() ([]byte, error) {
	type plain Body
	raw, err := json.Marshal(plain(b))
	if err != nil || len(b.Extra) == 0 {
		return raw, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for k, v := range b.Extra {
		if _, taken := m[k]; !taken {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// TypeURI is the problem type for a status, as Zuplo writes it.
func TypeURI(status int) string {
	return "https://httpproblems.com/http-status/" + strconv.Itoa(status)
}

// From converts any error into an *Error: an *Error anywhere in the chain is used as is,
// everything else is a 500 whose cause stays in the log.
func From(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	return New(http.StatusInternalServerError, "The gateway failed to handle the request.", err)
}

// BodyFor builds the problem document for e.
func BodyFor(e *Error, instance, requestID string, now time.Time) Body {
	title := http.StatusText(e.Status)
	if title == "" {
		title = fmt.Sprintf("Status %d", e.Status)
	}
	return Body{
		Type:     TypeURI(e.Status),
		Title:    title,
		Status:   e.Status,
		Detail:   e.Detail,
		Instance: instance,
		Reason:   e.Reason,
		Trace:    Trace{Timestamp: now.UTC().Format(time.RFC3339Nano), RequestID: requestID},
		Extra:    e.Extra,
	}
}

// Write renders e as problem+json. instance is the request path.
func Write(w http.ResponseWriter, e *Error, instance, requestID string) {
	WriteTraced(w, e, instance, requestID, "")
}

// WriteTraced is Write with the request's trace id in the trace member ("" leaves it out).
func WriteTraced(w http.ResponseWriter, e *Error, instance, requestID, traceID string) {
	h := w.Header()
	for k, vs := range e.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	b := BodyFor(e, instance, requestID, time.Now())
	b.Trace.TraceID = traceID
	body, err := json.Marshal(b)
	if err != nil {
		body = []byte(`{"status":500,"title":"Internal Server Error"}`)
	}
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.Status)
	_, _ = w.Write(body)
}
