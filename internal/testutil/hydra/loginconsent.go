package hydra

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
)

// SubjectCookie is the cookie a browser sends to the login app (LoginURL)
// to log in as its value.
const SubjectCookie = "mcpgate_test_subject"

type loginRequest struct {
	Skip        bool   `json:"skip"`
	Subject     string `json:"subject"`
	OIDCContext struct {
		LoginHint string `json:"login_hint"`
	} `json:"oidc_context"`
}

type consentRequest struct {
	Subject        string   `json:"subject"`
	RequestedScope []string `json:"requested_scope"`
	RequestedAud   []string `json:"requested_access_token_audience"`
	RequestURL     string   `json:"request_url"`
	Client         struct {
		ClientID string   `json:"client_id"`
		Audience []string `json:"audience"`
	} `json:"client"`
}

type redirectTo struct {
	RedirectTo string `json:"redirect_to"`
}

// loginConsentApp is Hydra's login and consent UI: it accepts everything
// without showing a page (see the package documentation).
func (s *Server) loginConsentApp() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", s.serveLogin)
	mux.HandleFunc("GET /consent", s.serveConsent)
	mux.HandleFunc("GET /error", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "<h1>hydra error</h1><p id=error>%s</p><p id=description>%s</p><p id=hint>%s</p>",
			html.EscapeString(q.Get("error")), html.EscapeString(q.Get("error_description")), html.EscapeString(q.Get("error_hint")))
	})
	return mux
}

func (s *Server) serveLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	challenge := r.URL.Query().Get("login_challenge")
	q := url.Values{"login_challenge": {challenge}}.Encode()
	var lr loginRequest
	if err := s.getJSON(ctx, s.AdminURL+"/admin/oauth2/auth/requests/login?"+q, &lr); err != nil {
		http.Error(w, "login app: "+err.Error(), http.StatusBadGateway)
		return
	}
	sub := lr.Subject
	if !lr.Skip {
		sub = s.pickSubject(r, lr.OIDCContext.LoginHint)
	}
	accept := map[string]any{"subject": sub, "remember": false}
	var to redirectTo
	if err := s.doJSON(ctx, http.MethodPut, s.AdminURL+"/admin/oauth2/auth/requests/login/accept?"+q, accept, &to, http.StatusOK); err != nil {
		http.Error(w, "login app: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, to.RedirectTo, http.StatusFound)
}

// pickSubject chooses who logs in: login_hint, then SubjectCookie, then
// SetSubject, then Options.Subject.
func (s *Server) pickSubject(r *http.Request, hint string) string {
	if hint != "" {
		return hint
	}
	if c, err := r.Cookie(SubjectCookie); err == nil && c.Value != "" {
		return c.Value
	}
	if p := s.subject.Load(); p != nil && *p != "" {
		return *p
	}
	return s.opts.Subject
}

func (s *Server) serveConsent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := url.Values{"consent_challenge": {r.URL.Query().Get("consent_challenge")}}.Encode()
	base := s.AdminURL + "/admin/oauth2/auth/requests/consent"
	var to redirectTo
	if s.denyConsent.Load() {
		reject := map[string]any{"error": "access_denied", "error_description": "The resource owner denied the request"}
		if err := s.doJSON(ctx, http.MethodPut, base+"/reject?"+q, reject, &to, http.StatusOK); err != nil {
			http.Error(w, "consent app: "+err.Error(), http.StatusBadGateway)
			return
		}
		http.Redirect(w, r, to.RedirectTo, http.StatusFound)
		return
	}

	var cr consentRequest
	if err := s.getJSON(ctx, base+"?"+q, &cr); err != nil {
		http.Error(w, "consent app: "+err.Error(), http.StatusBadGateway)
		return
	}
	aud := s.grantAudience(cr)
	if err := s.allowAudience(ctx, cr.Client.ClientID, aud); err != nil {
		http.Error(w, "consent app: "+err.Error(), http.StatusBadGateway)
		return
	}
	accept := map[string]any{
		"grant_scope":                 nonNil(cr.RequestedScope),
		"grant_access_token_audience": aud,
		"remember":                    false,
	}
	if c, ok := s.claimsOf(cr.Subject); ok {
		accept["session"] = c
	}
	if err := s.doJSON(ctx, http.MethodPut, base+"/accept?"+q, accept, &to, http.StatusOK); err != nil {
		http.Error(w, "consent app: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, to.RedirectTo, http.StatusFound)
}

// grantAudience is the requested audience, the RFC 8707 resource
// parameters of the authorization request and Options.GrantAudience.
func (s *Server) grantAudience(cr consentRequest) []string {
	aud := slices.Clone(cr.RequestedAud)
	if !s.opts.IgnoreResource {
		if u, err := url.Parse(cr.RequestURL); err == nil {
			aud = append(aud, u.Query()["resource"]...)
		}
	}
	aud = append(aud, s.opts.GrantAudience...)
	slices.Sort(aud)
	return nonNil(slices.Compact(aud))
}

// allowAudience adds the audiences the client is not yet allowed to its
// audience list, so that Hydra accepts them again on refresh.
func (s *Server) allowAudience(ctx context.Context, clientID string, aud []string) error {
	if len(aud) == 0 {
		return nil
	}
	s.audienceMu.Lock()
	defer s.audienceMu.Unlock()
	var c hydraClient
	u := s.AdminURL + "/admin/clients/" + url.PathEscape(clientID)
	if err := s.getJSON(ctx, u, &c); err != nil {
		return fmt.Errorf("reading client %s: %w", clientID, err)
	}
	allowed := slices.Clone(c.Audience)
	for _, a := range aud {
		if !slices.Contains(allowed, a) {
			allowed = append(allowed, a)
		}
	}
	if len(allowed) == len(c.Audience) {
		return nil
	}
	patch := []map[string]any{{"op": "add", "path": "/audience", "value": allowed}}
	if err := s.doJSON(ctx, http.MethodPatch, u, patch, nil, http.StatusOK); err != nil {
		return fmt.Errorf("allowing audience %v for client %s: %w", aud, clientID, err)
	}
	return nil
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
