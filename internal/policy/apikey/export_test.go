package apikey

import "time"

// SetClock replaces the clock a provisioned policy checks expiry and cache age with.
func SetClock(p *Policy, now func() time.Time) { p.st.now = now }
