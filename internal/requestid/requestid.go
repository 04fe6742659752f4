// Package requestid carries the id the gateway gives every request: in the request's context for
// code that runs on the request, and in the X-Request-Id response header for the caller.
package requestid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"unsafe"
)

// Header carries the request id on every response.
const Header = "X-Request-Id"

type ctxKey struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// Context is a context carrying a request id, for a caller that embeds it in a larger per-request
// value to save the allocation With makes. Init it before use; it is not copied after.
type Context struct {
	context.Context
	id string
}

// Init makes c carry id on top of parent.
func (c *Context) Init(parent context.Context, id string) { c.Context, c.id = parent, id }

// Value implements context.Context.
func (c *Context) Value(k any) any {
	if k == (ctxKey{}) {
		return c.id
	}
	return c.Context.Value(k)
}

// From returns the id of the request ctx belongs to, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// New returns a new request id: the process's random prefix and a counter, so ids are unique
// across replicas and restarts without a random read per request (one allocation). Ids are
// identifiers, not secrets.
func New() string {
	var b Buffer
	return string(b.fill())
}

// Len is the length of every id New makes.
const Len = prefixLen + 1 + 16

// Buffer holds an id's bytes where its owner lives, so the id costs no allocation of its own.
type Buffer [Len]byte

// NewIn writes a new id into b and returns it as a string that shares b's memory (the gateway
// keeps b in its one per-request allocation). b must not be written again while the string is in
// use: an id is written once, when its request starts.
func NewIn(b *Buffer) string {
	s := b.fill()
	return unsafe.String(&s[0], len(s))
}

func (b *Buffer) fill() []byte {
	n := counter.Add(1)
	copy(b[:], prefixHex)
	b[prefixLen] = '-'
	const digits = "0123456789abcdef"
	for i := len(b) - 1; i > prefixLen; i-- {
		b[i] = digits[n&0xf]
		n >>= 4
	}
	return b[:]
}

// prefixLen is the length of the process's prefix (8 random bytes, hex).
const prefixLen = 16

var (
	counter   atomic.Uint64
	prefixHex = func() string {
		var p [prefixLen / 2]byte
		_, _ = rand.Read(p[:])
		return hex.EncodeToString(p[:])
	}()
)
