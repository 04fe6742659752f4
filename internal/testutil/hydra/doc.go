// Package hydra runs a real Ory Hydra v2.3.0 OAuth 2.1 / OpenID Connect
// authorization server for tests, with its own login and consent app and a
// counting reverse proxy in front of Hydra's public port.
//
// The package does not import Hydra: it runs the binary that
// test/tools/build-hydra.sh builds (with -tags sqlite, so every test gets its
// own in-memory database via DSN=memory and no PostgreSQL is needed).
//
// # Finding the binary
//
//  1. MCPGATE_TEST_HYDRA names the binary. It must exist.
//  2. Otherwise the cache path the build script uses:
//     ${MCPGATE_TOOLS_DIR:-$HOME/.cache/mcpgate-tools}/hydra.
//  3. When CI=true and the binary is absent, the test fails: CI must run
//     test/tools/build-hydra.sh before the tests.
//  4. Otherwise (a developer machine) the test binary runs build-hydra.sh
//     once, found by walking up from the working directory. A cold build
//     takes about six minutes on two cores and says so on stderr; later runs
//     only compare a stamp (well under a second). Set
//     MCPGATE_TEST_HYDRA_BUILD=0 to skip the tests instead of building.
//
// Building rather than skipping was chosen so that `go test ./...` on a
// fresh checkout tests what CI tests; the build script serialises concurrent
// builds with a lock, so parallel test binaries build Hydra only once.
//
// # Layout of one Server
//
//	client ──▶ PublicURL: counting proxy (= issuer) ──▶ Hydra public port
//	test   ──▶ AdminURL:  proxy ──────────────────────▶ Hydra admin port
//	Hydra  ──302──▶ LoginURL: login/consent app (httptest) ──AdminURL──▶ Hydra
//
// The public proxy is the URL every client sees: Hydra's issuer
// (urls.self.issuer) is set to it, so discovery, token and JWKS URLs all go
// through it and TokenCalls can count token-endpoint requests by grant type;
// SetTokenInterceptor injects faults there.
//
// Hydra on SQLite (the default, DSN=memory) fails concurrent writes: two
// token requests at once give server_error "Unable to serialize access due
// to a concurrent update" (measured: 4 of 8 parallel code exchanges failed),
// and a file database with a busy timeout deadlocks instead. So with SQLite
// both proxies pass one request at a time to Hydra. Tests keep their
// meaning: two refreshes with one rotating refresh token still give one
// success and one invalid_grant, as on PostgreSQL, only in a fixed order.
// Talk to Hydra only through PublicURL and AdminURL. Options.DSN with a
// postgres:// URL runs Hydra on PostgreSQL and without the gate.
//
// # Login and consent
//
// The login app accepts every login without showing a page. The subject is,
// in order: the login_hint of the authorization request, the value of the
// SubjectCookie cookie the browser sends to the login app, the subject set
// with SetSubject, Options.Subject, and "alice". Consent is always given:
// grant_scope is the requested scope, grant_access_token_audience is the
// requested audience plus every RFC 8707 resource parameter of the
// authorization request plus Options.GrantAudience. Hydra itself ignores
// resource; granting it as audience keeps audience checks on in the
// resource servers under test. Because Hydra refuses to refresh a token whose
// granted audience the client is not allowed (fosite checks the client's
// audience list on refresh), the consent app first adds any missing granted
// audience to the client's audience list through the admin API, the way an
// operator would allow that client for that resource. SetClaims gives a
// subject's tokens extra claims (roles, groups) through the consent
// session: top-level in the ID token, under "ext" in the access token.
//
// A real browser (internal/testutil/browser) picks the subject by setting
// the cookie on the login app's origin before it starts the flow:
//
//	b.Navigate(h.LoginURL + "/error")
//	browser.Eval[string](b, `document.cookie = "mcpgate_test_subject=zoe; path=/"`)
//
// # Use
//
//	h := hydra.Start(t, hydra.Options{JWTAccessTokens: true, AccessTokenTTL: 2 * time.Second})
//	c := h.CreateClient(t, hydra.ClientSpec{RedirectURIs: []string{cb}})
//	cfg := h.OAuth2Config(c, cb, "mcp", "offline_access")
//	back := h.AuthorizeHeadless(t, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(v)), "bob")
//	tok, _ := cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(v))
//	_ = h.TokenCalls("refresh_token")
//
// One Hydra starts in 0.1–0.4 s, so each test can have its own. To share one
// across a package, call New in TestMain and Close after m.Run.
//
// # Hydra facts tests rely on
//
//   - Only /.well-known/openid-configuration; no RFC 8414 document (404).
//   - DCR at /oauth2/register answers "jwks": {} (an object), which
//     go-sdk v1.8.0's oauthex cannot decode.
//   - state must be at least 8 characters (else error=invalid_state).
//   - No RFC 9207 iss parameter on the authorization response.
//   - Refresh tokens rotate; reusing a used one is invalid_grant and revokes
//     the whole grant (the newer refresh token too).
//   - PKCE plain and S256; optional unless Options.EnforcePKCE.
package hydra
