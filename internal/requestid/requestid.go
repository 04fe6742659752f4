// Package requestid carries the id the gateway gives every request: in the request's context for
// code that runs on the request, and in the X-Request-Id response header for the caller.
package requestid

import "context"

// Header carries the request id on every response.
const Header = "X-Request-Id"

type ctxKey struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the id of the request ctx belongs to, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}
