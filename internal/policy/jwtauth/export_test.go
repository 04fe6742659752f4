package jwtauth

import "time"

// SetClock replaces the clock a provisioned policy checks exp, nbf and JWKS age with.
func SetClock(p *Policy, now func() time.Time) { p.st.now = now }
