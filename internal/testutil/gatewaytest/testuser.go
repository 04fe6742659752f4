package gatewaytest

import (
	"net/http"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// Test auth policy: it authenticates the caller from the UserHeader request header, trusting it
// as is — a stand-in for gateway auth (which has its own tests) in tests of what comes after it.
// Config names it as any policy:
//
//	{"name":"test-user","policyType":"test-user-inbound",
//	 "handler":{"module":"$import(@zuplo/runtime)","export":"TestUserInboundPolicy","options":{}}}
const (
	TestUserExport     = "TestUserInboundPolicy"
	TestUserPolicyType = "test-user-inbound"
	// UserHeader names the caller; the policy removes it, so tests can check what reaches the
	// upstream.
	UserHeader = "X-Test-User"
	// TestNamespace is the namespace of the users it authenticates.
	TestNamespace = "test"
)

// TestUserPolicy is the test auth policy (see TestUserExport).
type TestUserPolicy struct{}

// HandleRequest implements policy.Inbound.
func (*TestUserPolicy) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	if u := r.Header.Get(UserHeader); u != "" {
		c.User = &policy.User{Sub: u, Namespace: TestNamespace}
		r.Header.Del(UserHeader)
	}
	return nil, nil
}

func init() {
	policy.Register(policy.Module{Export: TestUserExport, PolicyType: TestUserPolicyType, Kind: policy.KindInbound,
		Authenticates: true, New: func() any { return &TestUserPolicy{} }})
}

var _ policy.Inbound = (*TestUserPolicy)(nil)
