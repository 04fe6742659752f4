package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mcpgate/mcpgate/internal/safehttp"
)

// httpDoer is what the engine needs from an HTTP client.
type httpDoer interface {
	Do(req *http.Request) (*http.Response, error)
}

// displayURL strips userinfo, query and fragment.
func displayURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return safehttp.DisplayURL(u)
}

// reply is a read response.
type reply struct {
	status      int
	header      http.Header
	body        []byte
	contentType string
}

// do sends req and reads the whole (bounded) body. Transport errors name the URL without its
// query (net/http's *url.Error would print it whole).
func do(c httpDoer, req *http.Request) (*reply, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, requestError(req, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, requestError(req, err)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return &reply{status: resp.StatusCode, header: resp.Header, body: body, contentType: ct}, nil
}

// get fetches a metadata document.
func get(ctx context.Context, c httpDoer, rawURL string) (*reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", displayURL(rawURL), err)
	}
	req.Header.Set("Accept", "application/json")
	return do(c, req)
}

// transportCode classifies an error from sending a request: a safehttp refusal is ssrf_blocked
// (the metadata points somewhere it may not), anything else is unreachable.
func transportCode(err error) (code string, bucket Bucket) {
	var se *safehttp.Error
	if errors.As(err, &se) && se.Reason != safehttp.ReasonBodyTooLarge {
		return CodeSSRFBlocked, BucketOAuthSetup
	}
	return CodeMetadataUnreachable, BucketUpstreamResponse
}

// transportReason says why a request to rawURL got no answer, for people: the SSRF guard's own
// refusal (which names the URL and the rule), or a short classification of the network failure —
// never the raw Go error, which carries resolved addresses and internals.
func transportReason(rawURL string, err error) string {
	var se *safehttp.Error
	if errors.As(err, &se) {
		return se.Error()
	}
	var ne net.Error
	why := "the connection failed"
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		why = "it did not answer in time"
	case errors.Is(err, syscall.ECONNREFUSED):
		why = "the connection was refused"
	case errors.Is(err, syscall.ECONNRESET):
		why = "the connection was reset"
	default:
		var de *net.DNSError
		if errors.As(err, &de) {
			why = "its host name could not be resolved"
		}
	}
	return "could not reach " + displayURL(rawURL) + ": " + why
}

// decodeJSON decodes a metadata document leniently (unknown members are fine) but requires an
// object.
func decodeJSON(b []byte, v any) error {
	trimmed := strings.TrimSpace(string(b))
	if !strings.HasPrefix(trimmed, "{") {
		return errors.New("not a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("malformed JSON: %w", err)
	}
	return nil
}

// retryAfter parses a Retry-After header (seconds or HTTP date); 0 when absent or unparsable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d.Round(time.Second)
		}
	}
	return 0
}

// upstreamBody keeps a non-2xx body for the error page, bounded.
func upstreamBody(r *reply) (body, contentType string) {
	if r == nil || r.status < 300 || len(r.body) == 0 {
		return "", ""
	}
	return bounded(string(r.body), maxUpstreamBody), r.contentType
}

func requestError(req *http.Request, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var se *safehttp.Error
	if errors.As(err, &se) {
		return se // already names the URL
	}
	return fmt.Errorf("%s %s: %w", req.Method, safehttp.DisplayURL(req.URL), err)
}
