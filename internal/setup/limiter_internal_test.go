package setup

import (
	"fmt"
	"testing"
	"time"
)

// TestLimiterIsBounded: however many addresses fail, the login throttle remembers at most
// MaxThrottledAddresses of them, forgetting the least recently failed first.
func TestLimiterIsBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLoginThrottle(func() time.Time { return now })
	const n = MaxThrottledAddresses + 15000
	addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }
	for i := range n {
		l.fail(addr(i))
	}
	if got := l.failures.Len(); got != MaxThrottledAddresses {
		t.Fatalf("%d addresses remembered after %d failed, want %d", got, n, MaxThrottledAddresses)
	}
	// An address that keeps failing stays, and is throttled.
	hot := addr(n - MaxThrottledAddresses) // the oldest remembered
	for range MaxFailedLogins - 1 {
		l.fail(hot)
	}
	for i := range 100 {
		l.fail(addr(n + i)) // new addresses push out the oldest, not hot
	}
	if l.check(hot) == 0 {
		t.Error("an address that failed recently was forgotten before older ones")
	}
	// The least recently failed address was forgotten: one more failure does not throttle it.
	old := addr(n - MaxThrottledAddresses + 1)
	for range MaxFailedLogins - 1 {
		l.fail(old)
	}
	if w := l.check(old); w != 0 {
		t.Errorf("a forgotten address kept its failures: wait %s", w)
	}
}

// TestLimiterKeysIPv6By64: every address of one IPv6 /64 shares one bucket; another /64 does not.
func TestLimiterKeysIPv6By64(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newLoginThrottle(func() time.Time { return now })
	for i := range MaxFailedLogins {
		l.fail(fmt.Sprintf("2001:db8:aa:bb::%x", i+1))
	}
	if w := l.check("2001:db8:aa:bb:ffff:ffff:ffff:fffe"); w == 0 {
		t.Error("another address of the same /64 is not throttled")
	}
	if w := l.check("2001:db8:aa:bc::1"); w != 0 {
		t.Errorf("an address of another /64 waits %s", w)
	}
	if got := l.failures.Len(); got != 1 {
		t.Errorf("%d buckets for one /64", got)
	}
	l.succeed("2001:db8:aa:bb::99")
	if w := l.check("2001:db8:aa:bb::1"); w != 0 {
		t.Errorf("a success in the /64 did not clear it: wait %s", w)
	}
}
