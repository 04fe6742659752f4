package proxy

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Transport tuning. Upstream connections are reused across clients: many concurrent clients of
// one upstream share a pool instead of each opening its own connection.
const (
	// maxIdleConnsPerHost lets many concurrent clients of one HTTP/1 upstream reuse connections
	// (an HTTP/2 upstream multiplexes them on one); maxIdleConns bounds the idle connections of
	// all upstreams together, so a gateway in front of many upstreams does not keep hundreds of
	// idle sockets for each.
	maxIdleConnsPerHost = 512
	maxIdleConns        = 4096
	idleConnTimeout     = 90 * time.Second
	dialTimeout         = 30 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	// copyBufferSize is ReverseProxy's copy buffer. An idle SSE stream holds one while it waits
	// for the upstream's next event, so it is a large part of an open stream's memory: 4 KiB,
	// the transport's own read buffer (a read at least that large bypasses it), rather than
	// ReverseProxy's 32 KiB. A large JSON answer is copied in more, smaller reads, which costs
	// little next to the write each read is followed by.
	copyBufferSize = 4 << 10
)

// sharedTransport is the one upstream transport of the process. It has no cap on active
// connections (MaxConnsPerHost 0), no total timeout and no response-header timeout: the engine times the
// headers per request, and an open SSE stream is an active connection, which IdleConnTimeout
// never touches. Compression is off so the transport never asks for gzip on its own (which would
// make it decompress, and hide the upstream's encoding from the client).
var sharedTransport = newTransport()

func newTransport() *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   maxIdleConnsPerHost,
		IdleConnTimeout:       idleConnTimeout,
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// bufferPool recycles ReverseProxy's copy buffers (it would allocate 32 KiB per response). A
// sync.Pool holds pointers; the slice headers ReverseProxy hands back are boxed in holders that are
// recycled too, so neither Get nor Put allocates in the steady state.
type bufferPool struct{ bufs, holders sync.Pool }

var buffers = &bufferPool{bufs: sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}}

func (b *bufferPool) Get() []byte {
	h := b.bufs.Get().(*[]byte)
	buf := *h
	*h = nil
	b.holders.Put(h)
	return buf
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) != copyBufferSize {
		return
	}
	h, _ := b.holders.Get().(*[]byte)
	if h == nil {
		h = new([]byte)
	}
	*h = buf[:copyBufferSize]
	b.bufs.Put(h)
}

// timedTransports holds the clones of transports that time the response headers, one per base
// transport and timeout, so engines (and every reload generation) with the same settings share
// one connection pool.
var timedTransports sync.Map // timedKey → *http.Transport

type timedKey struct {
	base    *http.Transport
	timeout time.Duration
}

// timedTransport returns base with ResponseHeaderTimeout set to timeout. The transport starts the
// timer once the request is written; dialling and the TLS handshake have their own bounds
// (dialTimeout, tlsHandshakeTimeout). Timing the headers here rather than with a per-call timer
// and cancellable context saves the call a child context registered in the server's request
// context: a map insert and removal under a lock on every request (BENCHMARKS.md, "Night").
func timedTransport(base *http.Transport, timeout time.Duration) *http.Transport {
	k := timedKey{base, timeout}
	if t, ok := timedTransports.Load(k); ok {
		return t.(*http.Transport)
	}
	t := base.Clone()
	t.ResponseHeaderTimeout = timeout
	actual, _ := timedTransports.LoadOrStore(k, t)
	return actual.(*http.Transport)
}

// isHeaderTimeout reports whether err is the transport's own "net/http: timeout awaiting response
// headers" (an unexported error: recognised by being a timeout with that text). Dial and TLS
// handshake timeouts are an unreachable upstream, as before.
func isHeaderTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout() && strings.Contains(err.Error(), "timeout awaiting response headers")
}
