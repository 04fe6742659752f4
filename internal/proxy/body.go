package proxy

// RequestBody returns the buffered request body, for policy.Context.RequestBody.
func (cl *call) RequestBody() []byte { return cl.body }
