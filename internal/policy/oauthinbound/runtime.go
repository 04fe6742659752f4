package oauthinbound

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/mcpgate/mcpgate/internal/policy"
)

// runtime is the provisioned state every export shares: the sign-in server's inbound step.
type runtime struct {
	in policy.Inbound
}

// attach resolves the spec and hands it to the gateway's sign-in server (Host.SignIn), keeping
// the step that authenticates each request of the policy's routes.
func (rt *runtime) attach(env *policy.Env, policyType string, idJag IDJagOptions, resolve func() (policy.SignInSpec, error)) error {
	if idJag.Enabled {
		return fmt.Errorf("%s: idJag.enabled is true, but ID-JAG token exchange is not supported in this build of mcpgate; set idJag.enabled to false or remove idJag", policyType)
	}
	spec, err := resolve()
	if err != nil {
		return err
	}
	if env == nil || env.Host == nil || env.Host.SignIn == nil {
		return fmt.Errorf("%s needs the gateway's sign-in server (Host.SignIn), and the gateway gave none", policyType)
	}
	spec.Name = env.Name
	spec.Routes = env.Routes
	in, err := env.Host.SignIn.Attach(spec)
	if err != nil {
		return err
	}
	if in == nil {
		return fmt.Errorf("%s: the gateway's sign-in server (Host.SignIn) returned no inbound step for policy %q", policyType, env.Name)
	}
	rt.in = in
	return nil
}

// HandleRequest authenticates the request by a gateway-issued access token (the sign-in
// server's step).
func (rt *runtime) HandleRequest(c *policy.Context, r *http.Request) (*http.Response, error) {
	if rt.in == nil {
		return nil, errors.New("sign-in policy used before Provision")
	}
	return rt.in.HandleRequest(c, r)
}

var _ policy.Inbound = (*runtime)(nil)
