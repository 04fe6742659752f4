package web

import (
	"net/http"
	"strconv"
	"unicode/utf8"
)

// Bucket says where a browser-facing failure comes from, so the reader knows whom to ask.
type Bucket string

// The buckets (docs/architecture.md#errors-three-buckets, docs/errors.md).
const (
	BucketGatewayConfig    Bucket = "Gateway configuration"
	BucketUpstreamOAuth    Bucket = "Upstream OAuth setup"
	BucketUpstreamResponse Bucket = "Upstream service response"
)

// MaxUpstreamBody bounds the upstream body the error page shows; longer bodies are cut.
const MaxUpstreamBody = 64 << 10

// ErrorPage is the browser error page: a friendly title and message, then developer details.
type ErrorPage struct {
	// Status is the response status (400, 403, 502, …); zero means 500.
	Status int
	// Title is the friendly headline; empty uses a generic one for Status.
	Title string
	// Message says what happened and what the person can do, in plain words.
	Message string
	// RequestID, Code and Reason are shown labelled "Request ID", "Error code" and "Reason".
	// Code is the gateway's stable error code; Reason is the underlying cause, safe to show
	// (never a token, code, state or secret).
	RequestID string
	Code      string
	Reason    string
	// Bucket is shown as "Category" when set.
	Bucket Bucket
	// UpstreamStatus is the HTTP status the upstream answered with, shown with its body.
	UpstreamStatus int
	// UpstreamHTML is the upstream's own HTML error page. It is shown in a sandboxed srcdoc
	// iframe (no scripts, no same-origin, no forms, no navigation; it inherits this page's CSP, so
	// it cannot load anything either), cut to MaxUpstreamBody bytes.
	UpstreamHTML string
	// UpstreamText is a non-HTML upstream body, shown as preformatted text when UpstreamHTML is
	// empty, cut to MaxUpstreamBody bytes.
	UpstreamText string
}

// errorView is what templates/error.html renders.
type errorView struct {
	ErrorPage
	HasUpstream        bool
	UpstreamStatusText string
	UpstreamTruncated  bool
	UpstreamLimit      string
}

// RenderError writes the error page with p.Status.
func RenderError(w http.ResponseWriter, p ErrorPage) error {
	if p.Status < 400 || p.Status > 599 {
		p.Status = http.StatusInternalServerError
	}
	if p.Title == "" {
		p.Title = defaultErrorTitle(p.Status)
	}
	if p.Message == "" {
		p.Message = "The gateway could not finish this step. If it keeps happening, send the details below to whoever runs this gateway."
	}
	v := errorView{ErrorPage: p, UpstreamLimit: strconv.Itoa(MaxUpstreamBody>>10) + " KiB"}
	var cutHTML, cutText bool
	v.UpstreamHTML, cutHTML = truncateUTF8(p.UpstreamHTML, MaxUpstreamBody)
	v.UpstreamText, cutText = truncateUTF8(p.UpstreamText, MaxUpstreamBody)
	v.UpstreamTruncated = cutHTML || (v.UpstreamHTML == "" && cutText)
	v.HasUpstream = v.UpstreamHTML != "" || v.UpstreamText != ""
	if p.UpstreamStatus != 0 {
		v.UpstreamStatusText = strconv.Itoa(p.UpstreamStatus)
		if t := http.StatusText(p.UpstreamStatus); t != "" {
			v.UpstreamStatusText += " " + t
		}
	}
	return render(w, p.Status, "error", p.Title, p.RequestID, cspBase()+"; form-action 'none'", v)
}

func defaultErrorTitle(status int) string {
	switch {
	case status == http.StatusBadRequest:
		return "This link cannot be used"
	case status == http.StatusForbidden:
		return "Access refused"
	case status == http.StatusNotFound:
		return "Page not found"
	case status == http.StatusGone:
		return "This link has expired"
	case status >= 500:
		return "Something went wrong"
	default:
		return "The request could not be completed"
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	s = s[:n]
	// Drop the bytes of a rune the cut split (at most UTFMax-1 of them).
	for i := 0; i < utf8.UTFMax-1 && len(s) > 0; i++ {
		if r, size := utf8.DecodeLastRuneInString(s); r != utf8.RuneError || size != 1 {
			break
		}
		s = s[:len(s)-1]
	}
	return s, true
}
