package headers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// decode decodes options strictly into the registered module, as the config loader does.
func decode(t *testing.T, export, options string) any {
	t.Helper()
	m, ok := policy.FindModule(export)
	if !ok {
		t.Fatalf("%s not registered", export)
	}
	v := m.New()
	dec := json.NewDecoder(strings.NewReader(options))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s options: %v", export, err)
	}
	return v
}

func TestRegistered(t *testing.T) {
	for export, policyType := range map[string]string{
		"SetHeadersInboundPolicy":        "set-headers-inbound",
		"RemoveHeadersInboundPolicy":     "remove-headers-inbound",
		"SetUpstreamApiKeyInboundPolicy": "set-upstream-api-key-inbound",
	} {
		m, ok := policy.FindModule(export)
		if !ok || m.PolicyType != policyType || m.Kind != policy.KindInbound {
			t.Errorf("%s: registered %v as %+v", export, ok, m)
		}
	}
}

func TestValidate(t *testing.T) {
	const secret = "sk-live-DO-NOT-PRINT"
	for _, tc := range []struct {
		name, export, options, want string
	}{
		{"set headers ok", SetHeadersExport, `{"headers":[{"name":"X-Api-Key","value":"k"},{"name":"Authorization","value":"Bearer x","overwrite":false}]}`, ""},
		{"set headers empty", SetHeadersExport, `{"headers":[]}`, "options.headers: must list at least one header"},
		{"set headers bad entries", SetHeadersExport, `{"headers":[{"name":"","value":"v"},{"name":"Bad Name","value":"v"},{"name":"host","value":"v"},{"name":"X-Ok","value":"` + secret + `\r\nX-Injected: 1"}]}`,
			"options.headers[0].name: must not be empty\n" +
				"options.headers[1].name: \"Bad Name\" is not a valid header name\n" +
				"options.headers[2].name: \"host\" is managed by the gateway and cannot be changed by a policy\n" +
				"options.headers[3].value: must not contain CR, LF or NUL characters"},
		{"remove headers ok", RemoveHeadersExport, `{"headers":["Authorization","x-api-key"]}`, ""},
		{"remove headers empty", RemoveHeadersExport, `{"headers":[]}`, "options.headers: must list at least one header"},
		{"remove headers bad", RemoveHeadersExport, `{"headers":["x:y"]}`, "options.headers[0]: \"x:y\" is not a valid header name"},
		{"api key ok", SetUpstreamAPIKeyExport, `{"value":"Bearer ` + secret + `"}`, ""},
		{"api key custom header", SetUpstreamAPIKeyExport, `{"header":"X-Api-Key","value":"k","overwrite":false}`, ""},
		{"api key missing value", SetUpstreamAPIKeyExport, `{"header":"X-Api-Key"}`, "options.value: is required"},
		{"api key bad value", SetUpstreamAPIKeyExport, `{"header":"Transfer-Encoding","value":"` + secret + `\n"}`,
			"options.header: \"Transfer-Encoding\" is managed by the gateway and cannot be changed by a policy\n" +
				"options.value: must not contain CR, LF or NUL characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := decode(t, tc.export, tc.options).(policy.Validator)
			err := v.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Validate() =\n%s\nwant\n%s", got, tc.want)
			}
			// The decoded policy never prints its secret, however it is formatted or logged.
			var logged bytes.Buffer
			slog.New(slog.NewJSONHandler(&logged, nil)).Info("policy", "options", v)
			for _, out := range []string{got, fmt.Sprintf("%v %+v %#v", v, v, v), logged.String()} {
				if strings.Contains(out, secret) {
					t.Errorf("secret printed: %s", out)
				}
			}
		})
	}
}

func TestUnknownOptionRejected(t *testing.T) {
	m, _ := policy.FindModule(SetUpstreamAPIKeyExport)
	dec := json.NewDecoder(strings.NewReader(`{"headerName":"X","value":"v"}`))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m.New()); err == nil || !strings.Contains(err.Error(), `"headerName"`) {
		t.Errorf("decoding an unknown option: %v", err)
	}
}

// run applies the inbound policies in order to a request, as the gateway does.
func run(t *testing.T, r *http.Request, ps ...policy.Inbound) *policy.Context {
	t.Helper()
	c := &policy.Context{RequestID: "r1"}
	for _, p := range ps {
		resp, err := p.HandleRequest(c, r)
		if resp != nil || err != nil {
			t.Fatalf("policy answered: %v %v", resp, err)
		}
	}
	return c
}

func TestHandleRequest(t *testing.T) {
	f := false
	newReq := func() *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.Header.Set("Authorization", "Bearer client")
		r.Header.Set("X-Existing", "client")
		r.Header.Set("X-Drop", "1")
		return r
	}

	t.Run("set headers", func(t *testing.T) {
		r := newReq()
		c := run(t, r, &SetHeaders{Headers: []Header{
			{Name: "X-Existing", Value: "policy"},
			{Name: "X-Kept", Value: "new"},
			{Name: "x-existing", Value: "ignored", Overwrite: &f},
			{Name: "authorization", Value: "Bearer upstream"},
		}})
		if got := r.Header.Values("X-Existing"); len(got) != 1 || got[0] != "policy" {
			t.Errorf("X-Existing = %q", got)
		}
		if got := r.Header.Get("X-Kept"); got != "new" {
			t.Errorf("X-Kept = %q", got)
		}
		if v, ok := c.UpstreamAuthorization(); !ok || v != "Bearer upstream" {
			t.Errorf("upstream Authorization = %q %v", v, ok)
		}
	})

	t.Run("api key respects overwrite false", func(t *testing.T) {
		r := newReq()
		c := run(t, r,
			&SetUpstreamAPIKey{Value: "Bearer first"},
			&SetUpstreamAPIKey{Value: "Bearer second", Overwrite: &f},
			&SetUpstreamAPIKey{Header: "X-Api-Key", Value: "k1"},
		)
		if v, _ := c.UpstreamAuthorization(); v != "Bearer first" {
			t.Errorf("upstream Authorization = %q, want the first", v)
		}
		if got := r.Header.Get("X-Api-Key"); got != "k1" {
			t.Errorf("X-Api-Key = %q", got)
		}
	})

	t.Run("api key overwrites by default", func(t *testing.T) {
		c := run(t, newReq(), &SetUpstreamAPIKey{Value: "Bearer first"}, &SetUpstreamAPIKey{Value: "Bearer second"})
		if v, _ := c.UpstreamAuthorization(); v != "Bearer second" {
			t.Errorf("upstream Authorization = %q, want the second", v)
		}
	})

	t.Run("remove headers clears an upstream credential", func(t *testing.T) {
		r := newReq()
		c := run(t, r, &SetUpstreamAPIKey{Value: "Bearer x"}, &RemoveHeaders{Headers: []string{"authorization", "x-drop"}})
		if v, ok := c.UpstreamAuthorization(); ok {
			t.Errorf("upstream Authorization still set: %q", v)
		}
		if r.Header.Get("X-Drop") != "" || r.Header.Get("Authorization") != "" {
			t.Errorf("headers not removed: %v", r.Header)
		}
	})
}
