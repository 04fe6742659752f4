// Package failpoint lets a fault test stop a real gateway process at a named point, to kill it
// there (kill -9) and check what survives. MCPGATE_FAILPOINT names the point; when the process
// reaches it, it prints "failpoint <name> reached" to stderr and blocks forever. Unset (always, in
// production), Hit costs one atomic load.
package failpoint

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// Env names the environment variable that arms a failpoint.
const Env = "MCPGATE_FAILPOINT"

// The points.
const (
	// RefreshAfterLease: a refresh took the connection's lease and has not called the token
	// endpoint yet.
	RefreshAfterLease = "refresh-after-lease"
	// RefreshAfterToken: the authorization server answered the refresh (a rotating server has
	// already replaced the refresh token) and nothing was stored yet.
	RefreshAfterToken = "refresh-after-token"
	// CallbackAfterExchange: the connect callback redeemed the code and has not stored the
	// connection yet.
	CallbackAfterExchange = "callback-after-exchange"
)

var (
	once  sync.Once
	armed atomic.Pointer[string]
)

// Hit blocks forever when name is the armed failpoint.
func Hit(name string) {
	once.Do(func() {
		if v := os.Getenv(Env); v != "" {
			armed.Store(&v)
		}
	})
	if p := armed.Load(); p == nil || *p != name {
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s reached\n", name)
	select {}
}
