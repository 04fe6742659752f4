//go:build !race

package bench_test

import "testing"

// TestCachedConnectionHeap bounds what the gateway keeps per user once that user's connection is
// cached: the credential and its bookkeeping, not the request that loaded it. A value kept past
// its request that shares memory with the request's state (the request id's bytes live in the
// gateway's per-request allocation) keeps the whole request alive: the first accepted request of
// every user in an audit aggregate did, 4.7 KiB per user. scripts/test runs it without -race
// (which changes allocation sizes), beside the allocation guards.
func TestCachedConnectionHeap(t *testing.T) {
	const users, limit = 2000, 2 << 10
	_, perConn := setUpManyUsers(t, users)
	t.Logf("heap per cached connection with %d users: %.0f bytes", users, perConn)
	if perConn > limit {
		t.Fatalf("the gateway holds %.0f bytes per user once the user's connection is cached, over %d: something keeps the request that loaded it", perConn, limit)
	}
}
