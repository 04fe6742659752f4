package capfilter

import (
	"bytes"
	"errors"
	"io"
)

// errEventTooLarge ends a stream whose event grows past maxAnswerBytes before it is complete:
// the filter cannot tell whether it is a list answer, so it is not passed on.
var errEventTooLarge = errors.New("capability filter: an SSE event is larger than 16 MiB")

// sseFilter is the body of a filtered SSE answer. It reads the upstream stream event by event
// and hands each on as soon as it is complete: an event whose data is the answer to a pending
// list request is rewritten, every other event (progress, logging, server requests) is passed
// byte for byte. Once every pending answer went by, the rest of the stream is copied as it
// comes, unparsed. Nothing waits for more than the event at hand, so streaming is preserved.
type sseFilter struct {
	src  io.ReadCloser
	f    *filterer
	buf  []byte // buf[r:w] was read from src and not yet handed on
	r, w int
	// scanned: buf[r:r+scanned] holds only complete lines of the event at hand (no blank one),
	// so the search for its end resumes there after more is read.
	scanned int
	out     []byte // ready to hand on; may alias buf before r
	err     error  // src's error, returned once buf and out are drained
	// pass: every pending answer has gone by; the rest is copied unparsed.
	pass bool
}

func newSSEFilter(src io.ReadCloser, f *filterer) *sseFilter { return &sseFilter{src: src, f: f} }

// Read implements io.Reader.
func (s *sseFilter) Read(p []byte) (int, error) {
	for {
		if len(s.out) > 0 {
			n := copy(p, s.out)
			s.out = s.out[n:]
			return n, nil
		}
		if s.pass {
			if s.r < s.w {
				s.out = s.buf[s.r:s.w]
				s.r = s.w
				continue
			}
			if s.err != nil {
				return 0, s.err
			}
			return s.src.Read(p)
		}
		n, scanned := eventEnd(s.buf[s.r:s.w], s.scanned, s.err != nil)
		s.scanned = scanned
		if n > 0 {
			s.out = s.event(s.buf[s.r : s.r+n])
			s.r += n
			s.scanned = 0
			if s.f.pend.done() {
				s.pass = true
			}
			continue
		}
		if s.err != nil {
			return 0, s.err
		}
		if s.w-s.r > maxAnswerBytes {
			s.err = errEventTooLarge
			s.r, s.w = 0, 0
			return 0, s.err
		}
		s.fill()
	}
}

// fill reads once from src. It runs only when out is empty, so the unread rest may move.
func (s *sseFilter) fill() {
	const minRead = 4 << 10
	if len(s.buf)-s.w < minRead {
		if s.r > 0 {
			s.w = copy(s.buf, s.buf[s.r:s.w])
			s.r = 0
		}
		if len(s.buf)-s.w < minRead {
			buf := make([]byte, max(2*len(s.buf), 32<<10))
			s.w = copy(buf, s.buf[:s.w])
			s.buf = buf
		}
	}
	n, err := s.src.Read(s.buf[s.w:])
	s.w += n
	if err != nil {
		s.err = err
	}
}

// Close implements io.Closer.
func (s *sseFilter) Close() error { return s.src.Close() }

// eventLen returns the length of the first complete event in b, its terminating blank line
// included, or 0. At the end of the stream (eof) an unterminated rest counts as an event, so it
// is filtered like any other.
func eventLen(b []byte, eof bool) int {
	n, _ := eventEnd(b, 0, eof)
	return n
}

// eventEnd is eventLen resuming at from, the start of a line; it also returns where to resume
// next time (the start of the first incomplete line).
func eventEnd(b []byte, from int, eof bool) (n, resume int) {
	i := from
	for i < len(b) {
		j := lineEnd(b[i:])
		if j < 0 {
			break
		}
		end := i + j // the line is b[i:end]
		next := end + 1
		if b[end] == '\r' {
			if next == len(b) && !eof {
				return 0, i // a CR at the end may be the first half of CRLF
			}
			if next < len(b) && b[next] == '\n' {
				next++
			}
		}
		if end == i {
			return next, 0 // a blank line ends the event
		}
		i = next
	}
	if eof {
		return len(b), 0
	}
	return 0, i
}

// lineEnd returns the index of the first CR or LF in b, or -1.
func lineEnd(b []byte) int {
	lf := bytes.IndexByte(b, '\n')
	if lf < 0 {
		lf = len(b)
	}
	if cr := bytes.IndexByte(b[:lf], '\r'); cr >= 0 {
		return cr
	}
	if lf == len(b) {
		return -1
	}
	return lf
}

// event returns the event to hand on for raw (one event with its terminator).
func (s *sseFilter) event(raw []byte) []byte {
	var data []byte
	nData := 0
	forEachLine(raw, func(line []byte) {
		if v, ok := fieldValue(line, "data"); ok {
			switch nData {
			case 0:
				data = v // one data line (the usual case) is used in place
			case 1:
				data = append(append(append([]byte(nil), data...), '\n'), v...)
			default:
				data = append(append(data, '\n'), v...)
			}
			nData++
		}
	})
	if nData == 0 {
		return raw
	}
	out, changed := s.f.payload(data)
	if !changed {
		return raw
	}
	// The other fields stay as they were, in order; the data becomes one line.
	b := make([]byte, 0, len(out)+64)
	wrote := false
	forEachLine(raw, func(line []byte) {
		if _, ok := fieldValue(line, "data"); ok {
			if !wrote {
				b = append(b, "data: "...)
				b = append(b, out...)
				b = append(b, '\n')
				wrote = true
			}
			return
		}
		b = append(b, line...)
		b = append(b, '\n')
	})
	return append(b, '\n')
}

// forEachLine calls fn with each non-blank line of an event, without its line ending.
func forEachLine(raw []byte, fn func(line []byte)) {
	for len(raw) > 0 {
		j := lineEnd(raw)
		if j < 0 {
			fn(raw)
			return
		}
		if j > 0 {
			fn(raw[:j])
		}
		next := j + 1
		if raw[j] == '\r' && next < len(raw) && raw[next] == '\n' {
			next++
		}
		raw = raw[next:]
	}
}

// fieldValue returns the value of an SSE line of the named field ("data: x" and "data:x" are
// both x; a line "data" has the empty value).
func fieldValue(line []byte, name string) ([]byte, bool) {
	if !bytes.HasPrefix(line, []byte(name)) {
		return nil, false
	}
	rest := line[len(name):]
	switch {
	case len(rest) == 0:
		return rest, true
	case rest[0] != ':':
		return nil, false
	}
	rest = rest[1:]
	if len(rest) > 0 && rest[0] == ' ' {
		rest = rest[1:]
	}
	return rest, true
}
