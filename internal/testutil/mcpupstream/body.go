package mcpupstream

import (
	"bytes"
	"io"
	"net/http"
)

// readAndRestore reads r's body and puts it back for the next handler.
func readAndRestore(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, err
}
