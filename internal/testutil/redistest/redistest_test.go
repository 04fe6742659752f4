package redistest_test

import (
	"net"
	"testing"

	"github.com/mcpgate/mcpgate/internal/testutil/redistest"
)

func TestStartAndStop(t *testing.T) {
	s := redistest.Start(t)
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	s.Stop()
	if c, err := net.Dial("tcp", s.Addr); err == nil {
		_ = c.Close()
		t.Error("the server still listens after Stop")
	}
	s.Stop() // twice is fine
}
