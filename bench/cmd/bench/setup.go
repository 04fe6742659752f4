package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/bench/upstream"
)

// The auth-path targets are set up the way a person and an MCP client set them up, over HTTP:
// connectWithAPIKey walks the connect flow of an API-key caller (the -32042 link, the gateway's
// API-key sign-in form, the connect consent page, the upstream's authorization server, the
// callback), and signIn is an MCP client signing a person in at the gateway (registration,
// authorize with PKCE, the development login, the consent page with its Connect link, the code,
// the token endpoint). Nothing is written to the gateway's database behind its back.

// basePath is the gateway's default base path of its own endpoints.
const basePath = "/__mcpgate"

// setupTimeout bounds each HTTP request of a setup flow.
const setupTimeout = 30 * time.Second

// browser is a cookie-keeping HTTP client that follows no redirect by itself.
type browser struct{ c *http.Client }

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{c: &http.Client{Jar: jar, Timeout: setupTimeout, Transport: &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// page is one response, its body read.
type page struct {
	resp *http.Response
	body string
}

func (p page) location() (*url.URL, error) {
	return p.resp.Request.URL.Parse(p.resp.Header.Get("Location"))
}

func (p page) String() string {
	b := p.body
	if len(b) > 600 {
		b = b[:600] + "…"
	}
	return fmt.Sprintf("%s %s: %d (Location %q)\n%s", p.resp.Request.Method, p.resp.Request.URL, p.resp.StatusCode, p.resp.Header.Get("Location"), b)
}

func (b *browser) do(req *http.Request) (page, error) {
	resp, err := b.c.Do(req)
	if err != nil {
		return page{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return page{resp: resp, body: string(body)}, err
}

func (b *browser) get(ctx context.Context, u string) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return page{}, err
	}
	return b.do(req)
}

// post submits a form as a browser submits the gateway's own forms (its pages send
// Referrer-Policy: no-referrer): "Origin: null" and "Sec-Fetch-Site: same-origin".
func (b *browser) post(ctx context.Context, u string, form url.Values) (page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return page{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "null")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

// follow GETs redirects until a page that is not a redirect, or a redirect to a URL starting
// with stopAt (when stopAt is set), which it returns without following.
func (b *browser) follow(ctx context.Context, p page, stopAt string) (page, error) {
	for range 10 {
		if p.resp.StatusCode/100 != 3 {
			return p, nil
		}
		loc, err := p.location()
		if err != nil {
			return p, err
		}
		if stopAt != "" && strings.HasPrefix(loc.String(), stopAt) {
			return p, nil
		}
		if p, err = b.get(ctx, loc.String()); err != nil {
			return p, err
		}
	}
	return p, fmt.Errorf("too many redirects, last: %s", p)
}

var (
	formStart   = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	connectHref = regexp.MustCompile(`href="([^"]*/auth/connections/[^"]*)"`)
)

// form returns the first POST form of p: its action (absolute) and hidden fields.
func (p page) form() (string, url.Values, error) {
	m := formStart.FindStringSubmatchIndex(p.body)
	if m == nil {
		return "", nil, fmt.Errorf("no form on the page: %s", p)
	}
	action := html.UnescapeString(p.body[m[2]:m[3]])
	rest := p.body[m[1]:]
	if end := strings.Index(rest, "</form>"); end >= 0 {
		rest = rest[:end]
	}
	fields := url.Values{}
	for _, h := range hiddenInput.FindAllStringSubmatch(rest, -1) {
		fields.Set(h[1], html.UnescapeString(h[2]))
	}
	u, err := p.resp.Request.URL.Parse(action)
	if err != nil {
		return "", nil, err
	}
	return u.String(), fields, nil
}

// toolsCall posts one JSON tools/call to gw's /mcp with authorization and returns the answer.
func toolsCall(ctx context.Context, gw, authorization string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/mcp", strings.NewReader(upstream.ToolsCall))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-11-25")
	req.Header.Set("Authorization", authorization)
	c := &http.Client{Timeout: setupTimeout, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// connectLink returns the authUrl of a -32042 connect-required answer (JSON, or one SSE event).
func connectLink(body string) (string, error) {
	data := body
	if i := strings.Index(body, "data: "); i >= 0 && !strings.HasPrefix(strings.TrimSpace(body), "{") {
		data = body[i+len("data: "):]
		if j := strings.IndexByte(data, '\n'); j >= 0 {
			data = data[:j]
		}
	}
	var msg struct {
		Error *struct {
			Code int `json:"code"`
			Data struct {
				AuthURL string `json:"authUrl"`
			} `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(data), &msg); err != nil || msg.Error == nil || msg.Error.Code != -32042 || msg.Error.Data.AuthURL == "" {
		return "", fmt.Errorf("want a -32042 answer with data.authUrl, got %.400s", body)
	}
	return msg.Error.Data.AuthURL, nil
}

// connectWithAPIKey stores the API-key caller's upstream connection through the gateway at gw
// (http://host:port): one tools/call gets the connect link; the browser opens it, signs in with
// the key on the gateway's form, approves on the consent page, and the upstream's authorization
// server sends it straight back to the gateway's callback. It checks a tools/call then succeeds.
func connectWithAPIKey(ctx context.Context, gw, key string) error {
	status, body, err := toolsCall(ctx, gw, "Bearer "+key)
	if err != nil {
		return fmt.Errorf("first tools/call: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("first tools/call: status %d: %.400s", status, body)
	}
	link, err := connectLink(body)
	if err != nil {
		return fmt.Errorf("first tools/call: %w", err)
	}
	b := newBrowser()
	p, err := b.get(ctx, link)
	if err != nil {
		return err
	}
	if loc, _ := p.location(); p.resp.StatusCode != http.StatusFound || loc == nil || !strings.Contains(loc.Path, basePath+"/oauth/login/api-key") {
		return fmt.Errorf("the connect link without a session should redirect to the API-key sign-in: %s", p)
	}
	if p, err = b.follow(ctx, p, ""); err != nil {
		return err
	}
	if err := signInWithKey(ctx, b, p, key); err != nil {
		return err
	}
	// Back on the connect consent page: approve; the authorization server redirects straight back.
	if p, err = b.get(ctx, link); err != nil {
		return err
	}
	if p.resp.StatusCode != http.StatusOK || !strings.Contains(p.body, `name="decision" value="approve"`) {
		return fmt.Errorf("connect consent page: %s", p)
	}
	if p, err = approve(ctx, b, p, ""); err != nil {
		return err
	}
	if p.resp.StatusCode != http.StatusOK {
		return fmt.Errorf("after the callback: %s", p)
	}
	if status, body, err = toolsCall(ctx, gw, "Bearer "+key); err != nil || status != http.StatusOK || !strings.Contains(body, `"result":`) {
		return fmt.Errorf("tools/call after connecting: status %d, error %v: %.400s", status, err, body)
	}
	return nil
}

// signInWithKey posts key on the gateway's API-key sign-in form p and checks it is sent back.
func signInWithKey(ctx context.Context, b *browser, p page, key string) error {
	if p.resp.StatusCode != http.StatusOK || !strings.Contains(p.body, `name="key"`) {
		return fmt.Errorf("API-key sign-in form: %s", p)
	}
	action, fields, err := p.form()
	if err != nil {
		return err
	}
	fields.Set("key", key)
	if p, err = b.post(ctx, action, fields); err != nil {
		return err
	}
	if p.resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("API-key sign-in: want 303 back to the connect page: %s", p)
	}
	return nil
}

// approve posts decision=approve on the consent form of p and follows the redirects (through the
// upstream's authorization server and the gateway's callback) until a page, or a redirect to
// stopAt.
func approve(ctx context.Context, b *browser, p page, stopAt string) (page, error) {
	action, fields, err := p.form()
	if err != nil {
		return p, err
	}
	fields.Set("decision", "approve")
	if p, err = b.post(ctx, action, fields); err != nil {
		return p, err
	}
	if p.resp.StatusCode/100 != 3 {
		return p, fmt.Errorf("approve: want a redirect: %s", p)
	}
	return b.follow(ctx, p, stopAt)
}

// signInClient is the MCP client's side of signIn.
type signInClient struct {
	id, redirect, verifier string
}

// signIn signs the development user in at the gateway gw as an MCP client would, connecting the
// route's upstream on the consent page, and returns the gateway's access token.
func signIn(ctx context.Context, gw string) (string, error) {
	c, err := registerClient(ctx, gw)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(c.verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {c.id}, "redirect_uri": {c.redirect},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {"bench-state"}, "scope": {"mcp:tools"}, "resource": {gw + "/mcp"}}
	b := newBrowser()
	p, err := b.get(ctx, gw+basePath+"/oauth/authorize/mcp?"+q.Encode())
	if err != nil {
		return "", err
	}
	// → the development login (loopback) → the consent page.
	if p, err = b.follow(ctx, p, c.redirect); err != nil {
		return "", err
	}
	if p.resp.StatusCode != http.StatusOK || !strings.Contains(p.body, "Authorize") {
		return "", fmt.Errorf("sign-in consent page: %s", p)
	}
	consentURL := p.resp.Request.URL.String()
	if m := connectHref.FindStringSubmatch(p.body); m != nil {
		// Connect: the upstream's connect consent page → approve → its authorization server →
		// the gateway's callback → back to the sign-in consent page.
		link, err := p.resp.Request.URL.Parse(html.UnescapeString(m[1]))
		if err != nil {
			return "", err
		}
		cp, err := b.get(ctx, link.String())
		if err != nil {
			return "", err
		}
		if cp, err = b.follow(ctx, cp, ""); err != nil {
			return "", err
		}
		if cp.resp.StatusCode != http.StatusOK || !strings.Contains(cp.body, "Connect "+upstream.TokenExchangeDisplayName) {
			return "", fmt.Errorf("connect consent page: %s", cp)
		}
		if p, err = approve(ctx, b, cp, c.redirect); err != nil {
			return "", err
		}
		if p.resp.StatusCode != http.StatusOK || !strings.Contains(p.body, "connected") {
			return "", fmt.Errorf("back on the sign-in consent page after connecting: %s", p)
		}
		if strings.Contains(p.body, `value="approve" disabled`) {
			return "", fmt.Errorf("Authorize still disabled after connecting (%s): %s", consentURL, p)
		}
	}
	action, fields, err := p.form()
	if err != nil {
		return "", err
	}
	fields.Set("decision", "approve")
	if p, err = b.post(ctx, action, fields); err != nil {
		return "", err
	}
	loc, _ := p.location()
	if p.resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), c.redirect) || loc.Query().Get("code") == "" {
		return "", fmt.Errorf("authorize should return to the client with a code: %s", p)
	}
	return redeemCode(ctx, gw, c, loc.Query().Get("code"))
}

func registerClient(ctx context.Context, gw string) (signInClient, error) {
	c := signInClient{redirect: "http://127.0.0.1:33418/callback", verifier: randomString(32)}
	reg := `{"client_name":"mcpgate bench","redirect_uris":["` + c.redirect + `"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw+basePath+"/oauth/register", strings.NewReader(reg))
	if err != nil {
		return c, err
	}
	req.Header.Set("Content-Type", "application/json")
	var out struct {
		ClientID string `json:"client_id"`
	}
	status, err := doJSON(req, &out)
	if err != nil || status != http.StatusCreated || out.ClientID == "" {
		return c, fmt.Errorf("client registration: status %d, %v", status, err)
	}
	c.id = out.ClientID
	return c, nil
}

func redeemCode(ctx context.Context, gw string, c signInClient, code string) (string, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.redirect},
		"code_verifier": {c.verifier}, "client_id": {c.id}, "resource": {gw + "/mcp"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw+basePath+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	status, err := doJSON(req, &out)
	if err != nil || status != http.StatusOK || out.AccessToken == "" {
		return "", fmt.Errorf("token endpoint: status %d, %v", status, err)
	}
	return out.AccessToken, nil
}

func doJSON(req *http.Request, out any) (int, error) {
	c := &http.Client{Timeout: setupTimeout, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%w: %.300s", err, b)
	}
	return resp.StatusCode, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
