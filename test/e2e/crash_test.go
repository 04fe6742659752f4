package e2e

// Crash tests (docs/operations.md, "Failure behaviour"): real `mcpgate serve` processes on one
// PostgreSQL database, a real Ory Hydra with refresh-token rotation, and kill -9 at the points
// internal/failpoint names. Each test waits on events (a failpoint's stderr line, Hydra's token
// requests, HTTP answers), never on sleeps, except where the event is a deadline: an access
// token's expiry.
//
// The lease a crashed instance held frees when it expires: connect.LeaseTTL, 30 s, a constant
// with no setting to shorten it. TestCrashMidRefresh and TestCrashMidRefreshRotated each wait it
// out once (about 30 s of their run time).

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/connect"
	"github.com/mcpgate/mcpgate/internal/failpoint"
	"github.com/mcpgate/mcpgate/internal/testutil/hydra"
)

// crashTokenTTL is the Hydra access-token lifetime of the refresh crash tests: short, so the
// token expires while the crashed instance's lease is held.
const crashTokenTTL = 3 * time.Second

// refreshLog records when Hydra received refresh requests (the counting proxy sees them all).
type refreshLog struct {
	mu    sync.Mutex
	times []time.Time
	// first, once armed (at armedAt), is closed at the next refresh request.
	armedAt time.Time
	first   chan struct{}
}

func watchRefreshes(h *hydra.Server) *refreshLog {
	l := &refreshLog{}
	h.SetTokenInterceptor(func(_ http.ResponseWriter, _ *http.Request, grant string) bool {
		if grant != "refresh_token" {
			return false
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		now := time.Now()
		l.times = append(l.times, now)
		if l.first != nil && !l.armedAt.IsZero() && now.After(l.armedAt) {
			close(l.first)
			l.first = nil
		}
		return false // pass it on to Hydra
	})
	return l
}

// arm returns a channel closed at the first refresh request from now on.
func (l *refreshLog) arm() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	ch := make(chan struct{})
	l.first, l.armedAt = ch, time.Now()
	return ch
}

// since returns the times of the refresh requests after t.
func (l *refreshLog) since(t time.Time) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Time
	for _, at := range l.times {
		if at.After(t) {
			out = append(out, at)
		}
	}
	return out
}

// crashLoad calls whoami in a loop on some instances, each worker in its own MCP session, and
// records every answer.
type crashLoad struct {
	c       *crashCluster
	mc      *mcpClient
	mu      sync.Mutex
	answers []*mcpAnswer
	// ok counts results per instance.
	ok      []atomic.Int64
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

func newCrashLoad(c *crashCluster) *crashLoad {
	return &crashLoad{c: c, mc: newMCPClient(c.key, crashPath, crashCallTimeout), ok: make([]atomic.Int64, len(c.gws))}
}

// start runs workers workers against instance i until stop.
func (l *crashLoad) start(i, workers int) {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancels = append(l.cancels, cancel)
	base := l.c.gws[i].Base
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			session := ""
			for ctx.Err() == nil {
				var a *mcpAnswer
				if session == "" {
					a = l.mc.initialize(ctx, base)
				} else {
					a = l.mc.whoami(ctx, base, session)
				}
				if ctx.Err() != nil {
					return // stopped: the answer is an artefact of the cancellation
				}
				a.instance = i
				k := a.kind()
				if session == "" && k == answerOK {
					session = a.sessionID
				} else if k == answerOK && a.resultText == "subject="+crashUser {
					l.ok[i].Add(1)
				}
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
				pause := 10 * time.Millisecond
				if k != answerOK {
					pause = 250 * time.Millisecond // a client backing off, briefly
				}
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		}()
	}
}

// stop stops every worker and waits for them.
func (l *crashLoad) stop() {
	for _, c := range l.cancels {
		c()
	}
	l.wg.Wait()
}

// of returns the recorded answers of instance i.
func (l *crashLoad) of(i int) []*mcpAnswer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*mcpAnswer
	for _, a := range l.answers {
		if a.instance == i {
			out = append(out, a)
		}
	}
	return out
}

// okSince counts instance i's whoami results of calls started after t.
func (l *crashLoad) okSince(i int, t time.Time) int {
	n := 0
	for _, a := range l.of(i) {
		if a.start.After(t) && a.kind() == answerOK && a.resultText == "subject="+crashUser {
			n++
		}
	}
	return n
}

// waitFor polls cond (a count the load or Hydra moves) until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCrashMidRefresh: three instances share alice's connection; Hydra's access tokens live 3 s,
// so the gateway refreshes all the time under load. Instance 0 stops right after taking the
// connection's refresh lease (failpoint refresh-after-lease) and is killed with SIGKILL there,
// while the load goes on on all three. The lease frees after connect.LeaseTTL; meanwhile the other
// instances' calls either wait or are answered 503 with Retry-After — never connect-required —
// and then one of them refreshes with the stored refresh token: Hydra answers every refresh 200
// (no invalid_grant), the connection stays active, and every call started after the takeover
// succeeds.
func TestCrashMidRefresh(t *testing.T) {
	c := startCrashCluster(t, crashOptions{
		instances:  3,
		failpoints: map[int]string{0: failpoint.RefreshAfterLease},
		hydra:      hydra.Options{AccessTokenTTL: crashTokenTTL},
	})
	refreshes := watchRefreshes(c.hydra)
	if state := c.connectVia(t, 1); state != "authenticating" {
		t.Fatalf("first connect-required state %q, want authenticating", state)
	}

	load := newCrashLoad(c)
	t.Cleanup(load.stop)
	// The load runs on instances 1 and 2 first, so it is under way when instance 0 joins and
	// (sooner or later: the three compete for the lease) takes the lease and stops.
	load.start(1, 3)
	load.start(2, 3)
	waitFor(t, 30*time.Second, "whoami results on instances 1 and 2", func() bool { return load.ok[1].Load() >= 5 && load.ok[2].Load() >= 5 })
	load.start(0, 3)
	reached := c.gws[0].waitFailpoint(t, 60*time.Second)
	takeover := refreshes.arm()
	c.gws[0].kill(t)
	killed := time.Now()
	t.Logf("instance 0 reached %s after %d refreshes and was killed %s later", failpoint.RefreshAfterLease,
		len(refreshes.since(time.Time{})), killed.Sub(reached).Round(time.Millisecond))

	// The lease holder is dead: nobody refreshes until its lease expires.
	var takeoverAt time.Time
	select {
	case <-takeover:
		takeoverAt = refreshes.since(reached)[0] // nothing refreshed while the lease was held
	case <-time.After(connect.LeaseTTL + connect.RefreshTimeout + 15*time.Second):
		t.Fatalf("no instance refreshed within %s of the kill", connect.LeaseTTL+connect.RefreshTimeout+15*time.Second)
	}
	t.Logf("takeover: the next refresh reached Hydra %s after instance 0 reported the lease", takeoverAt.Sub(reached).Round(time.Millisecond))
	if waited := takeoverAt.Sub(reached); waited < connect.LeaseTTL-5*time.Second {
		t.Errorf("another instance refreshed %s after instance 0 took the lease: it did not wait for the lease (TTL %s)", waited, connect.LeaseTTL)
	}
	// The load goes on for a while on the survivors.
	waitFor(t, 30*time.Second, "whoami results after the takeover", func() bool {
		return load.okSince(1, takeoverAt) >= 20 && load.okSince(2, takeoverAt) >= 20
	})
	load.stop()

	if n := c.hydra.TokenErrors("refresh_token"); n != 0 {
		t.Errorf("Hydra refused %d refresh requests (invalid_grant: a refresh token was lost or used twice), want 0", n)
	}
	for _, i := range []int{1, 2} {
		counts := map[string]int{}
		var longest time.Duration
		for _, a := range load.of(i) {
			k := a.kind()
			counts[k]++
			if d := a.end.Sub(a.start); d > longest {
				longest = d
			}
			switch {
			case k == answerConnectRequired:
				t.Errorf("%s answered connect-required: the connection was lost: %v", c.gws[i].name, a)
			case k == answerOther:
				t.Errorf("%s: unexpected answer %v", c.gws[i].name, a)
			case k == answerOK && a.resultText != "" && a.resultText != "subject="+crashUser:
				t.Errorf("%s: whoami said %q, want subject=%s", c.gws[i].name, a.resultText, crashUser)
			case a.start.After(takeoverAt) && k != answerOK:
				t.Errorf("%s: a call started after the takeover was not served: %v", c.gws[i].name, a)
			}
		}
		t.Logf("%s: %d answers: %v; longest call %s", c.gws[i].name, len(load.of(i)), counts, longest.Round(time.Millisecond))
	}
	t.Logf("instance 0 (killed): %d answers before and at the kill", len(load.of(0)))
	t.Logf("Hydra: %d refresh requests, %d refused", c.hydra.TokenCalls("refresh_token"), c.hydra.TokenErrors("refresh_token"))

	cs := c.connections(t)
	if len(cs) != 1 || cs[0].Subject != crashSubject || cs[0].Status != "active" || !cs[0].HasRefreshToken || cs[0].LastError != nil {
		t.Fatalf("connections after the crash: %+v, want alice's, active, with a refresh token and no error", cs)
	}
}

// TestCrashMidRefreshRotated is the documented loss case: instance 0 is killed after Hydra
// answered its refresh (failpoint refresh-after-token) and before it stored anything. Hydra
// rotates refresh tokens without a grace period, so the refresh token the database still holds was
// used: once the lease frees, the instance that refreshes next gets invalid_grant (Hydra's reuse
// detection also revokes the tokens the dead instance received). The connection then asks for
// reconsent cleanly: alice's call on another instance gets -32042 reconsent_required with a link,
// later calls get the same answer without another request to Hydra (no error loop), and
// reconnecting through the link restores the service.
func TestCrashMidRefreshRotated(t *testing.T) {
	c := startCrashCluster(t, crashOptions{
		instances:  3,
		failpoints: map[int]string{0: failpoint.RefreshAfterToken},
		hydra:      hydra.Options{AccessTokenTTL: crashTokenTTL},
		// Only the calls of this test refresh: the background refresher would race for the lease.
		env: []string{"MCPGATE_BACKGROUND_REFRESH=off"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	mc := newMCPClient(c.key, crashPath, crashCallTimeout)
	c.connectVia(t, 1)

	// Alice's client has a session (any instance reads it: the key ring is shared).
	a := mc.initialize(ctx, c.gws[2].Base)
	if a.kind() != answerOK || a.sessionID == "" {
		t.Fatalf("initialize after connecting: %v", a)
	}
	session := a.sessionID
	// Let the stored token expire, so that instance 0's call refreshes in the foreground (a
	// refresh the initialize may have started in the background moves the expiry: wait again).
	var conn crashConnection
	for {
		conn = c.connections(t)[0]
		time.Sleep(time.Until(conn.Expiry) + 200*time.Millisecond)
		if now := c.connections(t)[0]; now.Version == conn.Version {
			break
		}
	}
	refreshesBefore := c.hydra.TokenCalls("refresh_token")
	if n := c.hydra.TokenErrors("refresh_token"); n != 0 {
		t.Fatalf("%d refreshes refused before the crash", n)
	}
	got := make(chan *mcpAnswer, 1)
	go func() { got <- mc.whoami(ctx, c.gws[0].Base, session) }()
	c.gws[0].waitFailpoint(t, 30*time.Second)
	if calls, errs := c.hydra.TokenCalls("refresh_token")-refreshesBefore, c.hydra.TokenErrors("refresh_token"); calls != 1 || errs != 0 {
		t.Fatalf("at the failpoint Hydra saw %d more refreshes (%d refused), want instance 0's, answered", calls, errs)
	}
	c.gws[0].kill(t)
	killed := time.Now()
	if a := <-got; a.err == nil {
		t.Errorf("the call on the killed instance got an answer: %v", a)
	}
	if cs := c.connections(t); len(cs) != 1 || cs[0].Version != conn.Version || cs[0].Status != "active" {
		t.Fatalf("the killed instance stored something: %+v, want version %d untouched", cs, conn.Version)
	}

	// The survivors: each call waits for the dead lease (503 with Retry-After when it gives up)
	// until the lease frees; then the refresh with the used refresh token fails and the answer is
	// reconsent_required.
	var authURL string
	var reconsentOn int
	deadline := killed.Add(connect.LeaseTTL + 2*connect.RefreshTimeout + 10*time.Second)
	for i := 1; authURL == "" && time.Now().Before(deadline); i = 3 - i {
		a := mc.whoami(ctx, c.gws[i].Base, session)
		a.instance = i
		switch a.kind() {
		case answerTransient:
			t.Logf("%s, %s after the kill: 503 Retry-After %s (waited %s)", c.gws[i].name, time.Since(killed).Round(time.Millisecond),
				a.header.Get("Retry-After"), a.end.Sub(a.start).Round(time.Millisecond))
		case answerConnectRequired:
			state, u := a.connectData(t)
			if state != "reconsent_required" {
				t.Fatalf("%s: connect-required state %q, want reconsent_required", c.gws[i].name, state)
			}
			authURL, reconsentOn = u, i
			t.Logf("%s, %s after the kill: -32042 reconsent_required", c.gws[i].name, time.Since(killed).Round(time.Millisecond))
		default:
			// A call that itself starts the refresh while the dead instance's lease is held
			// waits 20 s; it must end as the documented 503, not as an error of its own.
			t.Errorf("after the kill: %v, want 503 with Retry-After or -32042 reconsent_required", a)
		}
	}
	if authURL == "" {
		t.Fatal("no reconsent_required answer after the lease expired")
	}
	if calls, errs := c.hydra.TokenCalls("refresh_token")-refreshesBefore, c.hydra.TokenErrors("refresh_token"); calls != 2 || errs != 1 {
		t.Errorf("since the crash Hydra saw %d refreshes, %d refused; want 2: instance 0's and exactly one refused (the used refresh token, sent once)", calls, errs)
	}
	cs := c.connections(t)
	if len(cs) != 1 || cs[0].Status != "reconsent_required" || cs[0].HasAccessToken || cs[0].HasRefreshToken {
		t.Fatalf("connection after the failed refresh: %+v, want reconsent_required with its tokens wiped", cs)
	}
	// No error loop: every instance answers at once, from the row, without asking Hydra again.
	for _, i := range []int{1, 2, 1, 2} {
		a := mc.whoami(ctx, c.gws[i].Base, session)
		a.instance = i
		if a.kind() != answerConnectRequired {
			t.Fatalf("after reconsent was required: %v", a)
		}
		if state, _ := a.connectData(t); state != "reconsent_required" {
			t.Fatalf("%s: state %q, want reconsent_required", c.gws[i].name, state)
		}
		if d := a.end.Sub(a.start); d > 5*time.Second {
			t.Errorf("%s took %s to answer reconsent_required", c.gws[i].name, d)
		}
	}
	if calls := c.hydra.TokenCalls("refresh_token") - refreshesBefore; calls != 2 {
		t.Errorf("Hydra saw %d more refreshes after the connection needed reconsent, want none", calls-2)
	}

	// Alice reconnects through the link; her session works again on every instance.
	b := newConnectBrowser()
	callback, err := c.approveHeadless(ctx, b, authURL, crashUser)
	if err != nil {
		t.Fatal(err)
	}
	if err := finishCallback(ctx, b, callback); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{1, 2} {
		if a := mc.whoami(ctx, c.gws[i].Base, session); a.kind() != answerOK || a.resultText != "subject="+crashUser {
			t.Errorf("%s after reconnecting: %v", c.gws[i].name, a)
		}
	}
	if cs := c.connections(t); len(cs) != 1 || cs[0].Status != "active" {
		t.Errorf("connection after reconnecting: %+v, want active", cs)
	}
	t.Logf("reconsent_required first answered by %s; reconnected through its link", c.gws[reconsentOn].name)
}

// TestCrashMidCallback: alice's connect flow reaches the callback of instance 0, which redeems the
// code at Hydra and is killed with SIGKILL before it stores the connection (failpoint
// callback-after-exchange). No connection row exists afterwards, the half-finished callback cannot
// be replayed elsewhere, and alice's next call, on instance 1, gets a fresh connect link that
// works end to end.
func TestCrashMidCallback(t *testing.T) {
	c := startCrashCluster(t, crashOptions{
		instances:  2,
		failpoints: map[int]string{0: failpoint.CallbackAfterExchange},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mc := newMCPClient(c.key, crashPath, crashCallTimeout)

	a := mc.initialize(ctx, c.gws[0].Base)
	state, firstLink := a.connectData(t)
	if state != "authenticating" {
		t.Fatalf("state %q, want authenticating", state)
	}
	b := newConnectBrowser()
	callback, err := c.approveHeadless(ctx, b, firstLink, crashUser)
	if err != nil {
		t.Fatal(err)
	}
	if n := c.hydra.TokenCalls("authorization_code"); n != 0 {
		t.Fatalf("%d code exchanges before the callback", n)
	}
	callbackErr := make(chan error, 1)
	go func() { callbackErr <- finishCallback(ctx, b, callback) }()
	c.gws[0].waitFailpoint(t, 30*time.Second)
	// The code is redeemed: alice's tokens exist only in instance 0's memory.
	if n, e := c.hydra.TokenCalls("authorization_code"), c.hydra.TokenErrors("authorization_code"); n != 1 || e != 0 {
		t.Fatalf("at the failpoint Hydra saw %d code exchanges (%d refused), want 1 answered", n, e)
	}
	c.gws[0].kill(t)
	if err := <-callbackErr; err == nil {
		t.Error("the callback on the killed instance showed a page")
	} else if ue := (*url.Error)(nil); errors.As(err, &ue) {
		t.Logf("the browser's callback request ended with: %v", ue.Err) // not the URL: it holds the code
	}

	if cs := c.connections(t); len(cs) != 0 {
		t.Fatalf("connections after the crash: %+v, want none (no half-written row)", cs)
	}
	// The callback cannot be finished on another instance: its pending authorization was claimed
	// (and its code redeemed) by the dead one.
	resp, page, err := b.do(ctx, http.MethodGet, strings.Replace(callback.String(), c.gws[0].Base, c.gws[1].Base, 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || pageTitle(page) != "Connection failed" || !strings.Contains(page, "already used") {
		t.Errorf("replaying the callback on instance 1: %d %q, want 400 Connection failed (unknown or already used)", resp.StatusCode, pageTitle(page))
	}
	if cs := c.connections(t); len(cs) != 0 {
		t.Fatalf("connections after the replay: %+v, want none", cs)
	}

	// Alice's next call, on the surviving instance, is told to connect again, with a fresh link.
	a = mc.initialize(ctx, c.gws[1].Base)
	a.instance = 1
	state, link := a.connectData(t)
	if state != "authenticating" || link == firstLink || !strings.HasPrefix(link, c.gws[1].URL("/__mcpgate/auth/connections/"+crashUpstreamID+"/connect?")) {
		t.Fatalf("next call: state %q link %s, want authenticating and a new link of instance 1", state, link)
	}
	b = newConnectBrowser()
	callback, err = c.approveHeadless(ctx, b, link, crashUser)
	if err != nil {
		t.Fatal(err)
	}
	if err := finishCallback(ctx, b, callback); err != nil {
		t.Fatal(err)
	}
	a = mc.initialize(ctx, c.gws[1].Base)
	if a.kind() != answerOK || a.sessionID == "" {
		t.Fatalf("initialize after connecting: %v", a)
	}
	if w := mc.whoami(ctx, c.gws[1].Base, a.sessionID); w.kind() != answerOK || w.resultText != "subject="+crashUser {
		t.Fatalf("whoami after connecting: %v", w)
	}
	cs := c.connections(t)
	if len(cs) != 1 || cs[0].Subject != crashSubject || cs[0].Status != "active" {
		t.Fatalf("connections: %+v, want alice's, active", cs)
	}
	if n := c.hydra.TokenCalls("authorization_code"); n != 2 {
		t.Errorf("Hydra saw %d code exchanges, want 2 (the lost one and the new one)", n)
	}
}
