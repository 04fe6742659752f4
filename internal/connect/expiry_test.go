package connect

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcpgate/mcpgate/internal/problem"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/telemetry"
)

// TestFreshValidAndSkew walks the fake clock through a token's life: fresh (served from memory)
// until the skew before expiry, then due (still valid: served while it refreshes), then expired.
func TestFreshValidAndSkew(t *testing.T) {
	tests := []struct {
		name      string
		lifetime  time.Duration
		noIssued  bool
		wantFresh time.Duration // fresh strictly before issue + wantFresh
	}{
		{name: "hour token refreshes a minute early", lifetime: time.Hour, wantFresh: time.Hour - DefaultRefreshSkew},
		{name: "short token refreshes in its last third", lifetime: 9 * time.Second, wantFresh: 6 * time.Second},
		{name: "three-minute token keeps the full skew", lifetime: 3 * time.Minute, wantFresh: 2 * time.Minute},
		{name: "unknown issue time keeps the full skew", lifetime: 90 * time.Second, noIssued: true, wantFresh: 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				issued := time.Now()
				tok := &Token{Issued: issued, Expiry: issued.Add(tt.lifetime)}
				if tt.noIssued {
					tok.Issued = time.Time{}
				}
				time.Sleep(tt.wantFresh - time.Millisecond)
				if !tok.fresh(time.Now(), DefaultRefreshSkew) || !tok.valid(time.Now()) {
					t.Fatalf("at %s: want fresh", time.Since(issued))
				}
				time.Sleep(time.Millisecond)
				if tok.fresh(time.Now(), DefaultRefreshSkew) {
					t.Fatalf("at %s: still fresh, want due", time.Since(issued))
				}
				if !tok.valid(time.Now()) {
					t.Fatalf("at %s: due but no longer valid", time.Since(issued))
				}
				time.Sleep(tt.lifetime - tt.wantFresh)
				if tok.valid(time.Now()) || tok.fresh(time.Now(), DefaultRefreshSkew) {
					t.Fatalf("at %s: want expired", time.Since(issued))
				}
			})
		})
	}
}

// TestNoExpiryIsAlwaysFresh: a token without expires_in is used until the upstream answers 401.
func TestNoExpiryIsAlwaysFresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tok := &Token{Issued: time.Now()}
		time.Sleep(365 * 24 * time.Hour)
		if !tok.fresh(time.Now(), DefaultRefreshSkew) || !tok.valid(time.Now()) {
			t.Fatal("a token without expiry expired")
		}
	})
}

// TestStepUpLimit: at most StepUpLimit step-ups per (connection, scope set) per StepUpWindow; other
// scope sets and other users have their own budget; the window slides.
func TestStepUpLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &Manager{now: time.Now, steps: map[string][]time.Time{}}
		alice := store.ConnectionKey{UpstreamID: "gh", Mode: store.ModeUser, Subject: "apikey|alice"}
		bob := store.ConnectionKey{UpstreamID: "gh", Mode: store.ModeUser, Subject: "apikey|bob"}
		admin := []string{"admin", "repo"}
		for i := range StepUpLimit {
			if !m.allowStepUp(alice, admin) {
				t.Fatalf("step-up %d refused", i+1)
			}
			time.Sleep(time.Minute)
		}
		if m.allowStepUp(alice, admin) {
			t.Fatal("step-up beyond the limit allowed")
		}
		if !m.allowStepUp(alice, []string{"repo", "write"}) || !m.allowStepUp(bob, admin) {
			t.Fatal("another scope set or another user shares alice's budget")
		}
		// The first attempt leaves the window 10 minutes after it was made.
		time.Sleep(StepUpWindow - StepUpLimit*time.Minute)
		if !m.allowStepUp(alice, admin) {
			t.Fatal("the window did not slide")
		}
		if m.allowStepUp(alice, admin) {
			t.Fatal("the window slid by more than one attempt")
		}
	})
}

func TestUnionScopes(t *testing.T) {
	got := unionScopes([]string{"repo", "read", ""}, []string{"admin", "repo"})
	if want := []string{"admin", "read", "repo"}; !slices.Equal(got, want) {
		t.Fatalf("union %v, want %v", got, want)
	}
	if got := unionScopes(nil, nil); len(got) != 0 {
		t.Fatalf("union of nothing: %v", got)
	}
}

// TestLeaseNameFitsEveryStore: PostgreSQL text refuses NUL bytes; names stay distinct for
// subjects that contain the separator.
func TestLeaseNameFitsEveryStore(t *testing.T) {
	a := leaseName(store.ConnectionKey{UpstreamID: "gh", Mode: store.ModeUser, Subject: "jwt|https://issuer/|alice"})
	b := leaseName(store.ConnectionKey{UpstreamID: "gh", Mode: store.ModeUser, Subject: "jwt|https:/"})
	if strings.ContainsRune(a, 0) || a == b || !strings.HasPrefix(a, "refresh/gh/user/") {
		t.Fatalf("lease names %q and %q", a, b)
	}
}

func TestRefreshOutcome(t *testing.T) {
	tests := []struct {
		reused bool
		err    error
		want   string
	}{
		{false, nil, telemetry.RefreshSuccess},
		{true, nil, telemetry.RefreshReused},
		{false, errReconsent, telemetry.RefreshDead},
		{false, problem.New(http.StatusBadGateway, "setup", nil), telemetry.RefreshSetup},
		{false, transient("x", errors.New("down")), telemetry.RefreshTransient},
		{false, errors.New("anything else"), telemetry.RefreshTransient},
	}
	for _, tt := range tests {
		if got := refreshOutcome(tt.reused, tt.err); got != tt.want {
			t.Errorf("refreshOutcome(%v, %v) = %s, want %s", tt.reused, tt.err, got, tt.want)
		}
	}
}
