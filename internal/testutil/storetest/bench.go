package storetest

import (
	"context"
	"testing"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
)

// Bench runs the store benchmarks: a connection read (with token decryption) and a CAS update.
func Bench(b *testing.B, be Backend) {
	open := func(b *testing.B) store.Store {
		s, err := be.Open(context.Background(), be.NewDSN(b), sqlstore.Options{Ring: Ring(b, "k1")})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		if err := s.PutConnection(context.Background(), newConn("u")); err != nil {
			b.Fatal(err)
		}
		return s
	}
	b.Run("GetConnection", func(b *testing.B) {
		s := open(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.GetConnection(context.Background(), key("u")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetConnectionParallel", func(b *testing.B) {
		s := open(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.GetConnection(context.Background(), key("u")); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("CASUpdate", func(b *testing.B) {
		s := open(b)
		c, err := s.GetConnection(context.Background(), key("u"))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			c.AccessToken = "refreshed-token"
			if err := s.PutConnection(context.Background(), c); err != nil {
				b.Fatal(err)
			}
		}
	})
}
