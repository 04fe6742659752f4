package hydra

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Defaults of Options.
const (
	DefaultSubject      = "alice"
	DefaultScope        = "mcp"
	DefaultLogLevel     = "warn"
	DefaultStartTimeout = 60 * time.Second

	// DSNMemory selects Hydra's in-memory SQLite database (Options.DSN).
	DSNMemory = "memory"

	// stopTimeout is how long Close waits after SIGINT before SIGKILL.
	stopTimeout = 10 * time.Second
	// startAttempts bounds retries when a free port was taken between
	// choosing it and Hydra binding it.
	startAttempts = 3
)

// ErrNoBinary wraps the error New returns when the Hydra binary is absent
// and building it is turned off (MCPGATE_TEST_HYDRA_BUILD=0). Start skips the
// test on it; TestMain users can do the same.
var ErrNoBinary = errSkip

// Options configures one Hydra server. The zero value is a working server:
// opaque access tokens, Hydra's default lifetimes (access 1h, refresh 720h),
// refresh-token rotation (Hydra's default, no grace period), DCR enabled,
// scope "mcp" advertised, subject "alice".
type Options struct {
	// Subject is the default subject the login app logs in. See the package
	// documentation for how a test picks another one per authorization.
	Subject string
	// GrantAudience is added to the access-token audience of every consent.
	GrantAudience []string
	// IgnoreResource stops the consent app from granting the authorization
	// request's RFC 8707 resource parameters as audience.
	IgnoreResource bool
	// JWTAccessTokens makes Hydra issue RFC 9068-style JWT access tokens
	// (strategies.access_token=jwt) instead of opaque ones.
	JWTAccessTokens bool
	// AccessTokenTTL and RefreshTokenTTL set ttl.access_token and
	// ttl.refresh_token; zero keeps Hydra's default, a negative
	// RefreshTokenTTL means refresh tokens never expire.
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	// RefreshTokenGracePeriod lets a used refresh token be reused for this
	// long (oauth2.grant.refresh_token.rotation_grace_period, at most 5m).
	// Zero is Hydra's default: strict rotation, reuse is invalid_grant and
	// revokes the whole grant.
	RefreshTokenGracePeriod time.Duration
	// Scopes are advertised in discovery (scopes_supported) and given to
	// dynamically registered clients that ask for no scope, besides openid,
	// offline and offline_access. Default: ["mcp"].
	Scopes []string
	// DisableDCR turns off dynamic client registration (POST /oauth2/register).
	DisableDCR bool
	// EnforcePKCE makes PKCE mandatory for all clients (Hydra enforces it for
	// none of them by default).
	EnforcePKCE bool
	// LogLevel is Hydra's log level (default "warn"). Logs are kept in memory
	// and printed when the test fails.
	LogLevel string
	// Env holds extra Hydra settings as environment variables (for example
	// "OAUTH2_PKCE_ENFORCED_FOR_PUBLIC_CLIENTS": "true"); they win over
	// everything above. Slices are JSON arrays.
	Env map[string]string
	// DSN is Hydra's database. Empty means DSNMemory: a private in-memory
	// SQLite database that Hydra migrates itself. Hydra on SQLite fails
	// concurrent writes (server_error "Unable to serialize access due to a
	// concurrent update", or hangs with a busy timeout), so with SQLite the
	// proxies in front of both Hydra ports pass one request at a time (see
	// the package documentation). A postgres:// DSN lifts that: its schema
	// is migrated before Hydra starts (the database must be empty or
	// Hydra's) and requests run concurrently.
	DSN string
	// Binary is the Hydra binary; empty means Binary().
	Binary string
	// StartTimeout bounds the wait for /health/ready (default 60 s: the
	// machine may be busy compiling).
	StartTimeout time.Duration
}

// Server is a running Hydra with its login/consent app and counting proxy.
type Server struct {
	// PublicURL is the counting proxy in front of Hydra's public port and
	// Hydra's issuer: every client must use it.
	PublicURL string
	// AdminURL is a proxy in front of Hydra's admin port (no
	// authentication).
	AdminURL string
	// LoginURL is the base URL of the login/consent app; a browser sets
	// SubjectCookie for this URL to pick the subject.
	LoginURL string
	// StartDuration is how long Hydra took from exec to ready;
	// MigrateDuration how long the schema migration before it took (zero
	// for DSNMemory, where Hydra migrates while starting).
	StartDuration   time.Duration
	MigrateDuration time.Duration

	opts     Options
	issuer   string
	upstream string // Hydra's real public URL, behind the proxy
	http     *http.Client

	proxy      *httptest.Server
	adminProxy *httptest.Server
	rp         atomic.Pointer[httputil.ReverseProxy] // to the public port
	rpAdmin    atomic.Pointer[httputil.ReverseProxy] // to the admin port
	app        *httptest.Server
	count      counter
	// gate passes one request at a time to a Hydra on SQLite.
	gate      sync.Mutex
	serialize bool

	subject     atomic.Pointer[string]
	denyConsent atomic.Bool
	claimsMu    sync.Mutex
	claims      map[string]sessionClaims // by subject, see SetClaims
	audienceMu  sync.Mutex               // serialises client audience updates

	migrated bool
	cmd      *exec.Cmd
	exited   chan struct{}
	logs     syncBuffer

	closeOnce sync.Once
	closeErr  error
}

// Start starts Hydra for the test and stops it when the test ends. It skips
// the test when the binary is absent and building is turned off, and fails
// it on any other error. Hydra's log is printed when the test fails.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Binary == "" {
		bin, err := Binary(t.Logf)
		if errors.Is(err, ErrNoBinary) {
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		opts.Binary = bin
	}
	s, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hydra log (%s):\n%s", s.PublicURL, s.Logs())
		}
		if err := s.Close(); err != nil {
			t.Errorf("stopping hydra: %v", err)
		}
	})
	return s
}

// New starts Hydra without a testing.TB, for TestMain. The caller must call
// Close.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Binary == "" {
		bin, err := Binary(func(format string, args ...any) {
			fmt.Fprintf(os.Stderr, format+"\n", args...)
		})
		if err != nil {
			return nil, err
		}
		opts.Binary = bin
	}
	if opts.DSN == "" {
		opts.DSN = DSNMemory
	}
	if opts.Subject == "" {
		opts.Subject = DefaultSubject
	}
	if opts.Scopes == nil {
		opts.Scopes = []string{DefaultScope}
	}
	if opts.LogLevel == "" {
		opts.LogLevel = DefaultLogLevel
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = DefaultStartTimeout
	}

	s := &Server{
		opts:   opts,
		http:   &http.Client{Timeout: 30 * time.Second},
		exited: make(chan struct{}),
	}
	s.count.calls = map[string]int{}
	s.count.errors = map[string]int{}
	s.serialize = !strings.HasPrefix(opts.DSN, "postgres://") && !strings.HasPrefix(opts.DSN, "postgresql://")
	s.proxy = httptest.NewServer(http.HandlerFunc(s.servePublic))
	s.adminProxy = httptest.NewServer(http.HandlerFunc(s.serveAdmin))
	s.app = httptest.NewServer(s.loginConsentApp())
	s.PublicURL = s.proxy.URL
	s.AdminURL = s.adminProxy.URL
	s.LoginURL = s.app.URL
	s.issuer = s.PublicURL

	var err error
	for range startAttempts {
		if err = s.start(ctx); err == nil || !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		s.closeServers()
		return nil, err
	}
	return s, nil
}

var errPortTaken = errors.New("port taken")

// start execs Hydra on fresh ports and waits until it is ready.
func (s *Server) start(ctx context.Context) error {
	publicPort, err := freePort()
	if err != nil {
		return err
	}
	adminPort, err := freePort()
	if err != nil {
		return err
	}
	s.upstream = "http://127.0.0.1:" + strconv.Itoa(publicPort)
	s.rp.Store(s.newReverseProxy(s.upstream, true))
	s.rpAdmin.Store(s.newReverseProxy("http://127.0.0.1:"+strconv.Itoa(adminPort), false))
	s.logs.Reset()

	env := s.env(publicPort, adminPort)
	if !s.migrated {
		begin := time.Now()
		if err := s.migrate(ctx, env); err != nil {
			return err
		}
		s.MigrateDuration = time.Since(begin)
		s.migrated = true
	}
	cmd := exec.Command(s.opts.Binary, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = env
	cmd.Stdout = &s.logs
	cmd.Stderr = &s.logs
	setProcAttr(cmd)
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting hydra %s: %w", s.opts.Binary, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	if err := s.waitReady(ctx, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		logs := s.logs.String()
		if strings.Contains(logs, "address already in use") {
			return fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return fmt.Errorf("waiting for hydra: %w (exit: %v)\nhydra log:\n%s", err, waitErr, logs)
	}
	s.StartDuration = time.Since(begin)
	s.cmd = cmd
	s.exited = exited

	// Read the issuer back so Issuer() is exactly what tokens carry.
	var disco struct {
		Issuer string `json:"issuer"`
	}
	if err := s.getJSON(ctx, s.PublicURL+"/.well-known/openid-configuration", &disco); err != nil {
		_ = s.stopHydra()
		return fmt.Errorf("reading hydra discovery: %w", err)
	}
	s.issuer = disco.Issuer
	return nil
}

// env builds Hydra's whole environment: nothing of the caller's environment
// (a stray DSN, say) may leak into it.
func (s *Server) env(publicPort, adminPort int) []string {
	o := s.opts
	scopes := append([]string{"openid", "offline", "offline_access"}, o.Scopes...)
	kv := map[string]string{
		"DSN":                     s.opts.DSN,
		"SECRETS_SYSTEM":          randomHex(32),
		"SERVE_PUBLIC_HOST":       "127.0.0.1",
		"SERVE_PUBLIC_PORT":       strconv.Itoa(publicPort),
		"SERVE_ADMIN_HOST":        "127.0.0.1",
		"SERVE_ADMIN_PORT":        strconv.Itoa(adminPort),
		"URLS_SELF_ISSUER":        s.PublicURL,
		"URLS_SELF_PUBLIC":        s.PublicURL,
		"URLS_LOGIN":              s.LoginURL + "/login",
		"URLS_CONSENT":            s.LoginURL + "/consent",
		"URLS_ERROR":              s.LoginURL + "/error",
		"STRATEGIES_ACCESS_TOKEN": "opaque",
		"WEBFINGER_OIDC_DISCOVERY_SUPPORTED_SCOPE":       jsonArray(scopes),
		"OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED":       strconv.FormatBool(!o.DisableDCR),
		"OIDC_DYNAMIC_CLIENT_REGISTRATION_DEFAULT_SCOPE": jsonArray(scopes),
		"OAUTH2_EXPOSE_INTERNAL_ERRORS":                  "true",
		// Client secrets are hashed on every token call; the default 25000
		// PBKDF2 rounds only cost CPU in tests.
		"OAUTH2_HASHERS_PBKDF2_ITERATIONS": "1",
		"LOG_LEVEL":                        o.LogLevel,
		"LOG_LEAK_SENSITIVE_VALUES":        "false",
	}
	if !o.DisableDCR {
		kv["WEBFINGER_OIDC_DISCOVERY_CLIENT_REGISTRATION_URL"] = s.PublicURL + "/oauth2/register"
	}
	if o.JWTAccessTokens {
		kv["STRATEGIES_ACCESS_TOKEN"] = "jwt"
	}
	if o.AccessTokenTTL > 0 {
		kv["TTL_ACCESS_TOKEN"] = hydraDuration(o.AccessTokenTTL)
	}
	switch {
	case o.RefreshTokenTTL > 0:
		kv["TTL_REFRESH_TOKEN"] = hydraDuration(o.RefreshTokenTTL)
	case o.RefreshTokenTTL < 0:
		kv["TTL_REFRESH_TOKEN"] = "-1"
	}
	if o.RefreshTokenGracePeriod > 0 {
		kv["OAUTH2_GRANT_REFRESH_TOKEN_ROTATION_GRACE_PERIOD"] = hydraDuration(o.RefreshTokenGracePeriod)
	}
	if o.EnforcePKCE {
		kv["OAUTH2_PKCE_ENFORCED"] = "true"
	}
	for k, v := range o.Env {
		kv[k] = v
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir(), "TMPDIR=" + os.TempDir()}
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		env = append(env, k+"="+kv[k])
	}
	return env
}

// migrate creates Hydra's schema; Hydra only does that itself for
// DSN=memory.
func (s *Server) migrate(ctx context.Context, env []string) error {
	if s.opts.DSN == DSNMemory {
		return nil
	}
	cmd := exec.CommandContext(ctx, s.opts.Binary, "migrate", "sql", "up", "-e", "--yes")
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("migrating hydra database: %w\n%s", err, out)
	}
	return nil
}

// waitReady polls the admin and public (through the proxy) readiness
// endpoints until both answer 200, Hydra exits, or the timeout passes.
func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.ready(ctx, s.AdminURL) && s.ready(ctx, s.PublicURL) {
			return nil
		}
		select {
		case <-exited:
			return errors.New("hydra exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("hydra not ready after %s: %w", s.opts.StartTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *Server) ready(ctx context.Context, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health/ready", nil)
	if err != nil {
		return false
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Close stops Hydra (SIGINT, then SIGKILL after 10 s) and the helper
// servers. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.stopHydra()
		s.closeServers()
	})
	return s.closeErr
}

// stopHydra stops the Hydra process, if it runs.
func (s *Server) stopHydra() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("hydra did not stop within %s of SIGINT; killed", stopTimeout)
	}
}

func (s *Server) closeServers() {
	s.proxy.Close()
	s.adminProxy.Close()
	s.app.Close()
}

// Issuer is Hydra's issuer as its discovery document states it (the proxy
// URL, no trailing slash).
func (s *Server) Issuer() string { return s.issuer }

// JWKSURL is where Hydra publishes its token signing keys.
func (s *Server) JWKSURL() string { return s.PublicURL + "/.well-known/jwks.json" }

// AuthURL, TokenURL, RegisterURL and RevokeURL are Hydra's public endpoints
// (through the proxy).
func (s *Server) AuthURL() string     { return s.PublicURL + "/oauth2/auth" }
func (s *Server) TokenURL() string    { return s.PublicURL + "/oauth2/token" }
func (s *Server) RegisterURL() string { return s.PublicURL + "/oauth2/register" }
func (s *Server) RevokeURL() string   { return s.PublicURL + "/oauth2/revoke" }

// DiscoveryURL is Hydra's only metadata document: Hydra serves no RFC 8414
// /.well-known/oauth-authorization-server.
func (s *Server) DiscoveryURL() string { return s.PublicURL + "/.well-known/openid-configuration" }

// Logs returns what Hydra has written to stdout and stderr so far.
func (s *Server) Logs() string { return s.logs.String() }

// sessionClaims are the extra claims the consent app puts in one subject's
// tokens.
type sessionClaims struct {
	AccessToken map[string]any `json:"access_token,omitempty"`
	IDToken     map[string]any `json:"id_token,omitempty"`
}

// SetClaims makes the consent app add claims to the tokens of subject's
// later authorizations (the session of Hydra's consent accept API): idToken
// to the ID token at its top level, accessToken to the access token, where
// Hydra puts them under "ext" (in a JWT access token and in introspection),
// since the server allows no top-level access-token claims. Nil maps remove
// the subject's claims.
func (s *Server) SetClaims(subject string, accessToken, idToken map[string]any) {
	s.claimsMu.Lock()
	defer s.claimsMu.Unlock()
	if accessToken == nil && idToken == nil {
		delete(s.claims, subject)
		return
	}
	if s.claims == nil {
		s.claims = map[string]sessionClaims{}
	}
	s.claims[subject] = sessionClaims{AccessToken: maps.Clone(accessToken), IDToken: maps.Clone(idToken)}
}

// claimsOf is what SetClaims set for subject.
func (s *Server) claimsOf(subject string) (sessionClaims, bool) {
	s.claimsMu.Lock()
	defer s.claimsMu.Unlock()
	c, ok := s.claims[subject]
	return c, ok
}

// SetSubject changes the default subject the login app logs in, for
// authorizations that name none with login_hint or SubjectCookie.
func (s *Server) SetSubject(sub string) { s.subject.Store(&sub) }

// SetDenyConsent makes the consent app reject (true) or accept (false)
// every consent request; rejected ones end at the client's redirect_uri
// with error=access_denied.
func (s *Server) SetDenyConsent(deny bool) { s.denyConsent.Store(deny) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// hydraDuration formats d the way Hydra's config schema accepts
// (^(\d+(ns|us|ms|s|m|h))+$: no fractions).
func hydraDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

func jsonArray(v []string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// syncBuffer is a bytes.Buffer safe for Hydra's two output pipes and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Reset()
}
