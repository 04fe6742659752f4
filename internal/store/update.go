package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// maxUpdateAttempts bounds Update's retries, so a livelock surfaces as ErrConflict instead of a hang.
const maxUpdateAttempts = 1000

// Update reads the connection, applies fn and writes it back with compare-and-swap, retrying from a
// fresh read whenever another writer won. fn may be called several times and must not have side
// effects outside c. It returns the written connection.
func Update(ctx context.Context, s Connections, k ConnectionKey, fn func(c *Connection) error) (*Connection, error) {
	for range maxUpdateAttempts {
		c, err := s.GetConnection(ctx, k)
		if err != nil {
			return nil, err
		}
		if err := fn(c); err != nil {
			return nil, err
		}
		err = s.PutConnection(ctx, c)
		if errors.Is(err, ErrConflict) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("updating connection after %d attempts: %w", maxUpdateAttempts, ErrConflict)
}

// RunSweeper calls s.Sweep every interval until ctx ends, logging failures
// (docs/architecture.md#sweeping).
func RunSweeper(ctx context.Context, s Sweeper, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			n, err := s.Sweep(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("sweeping expired records", "err", err)
			} else if n > 0 {
				log.Debug("swept expired records", "rows", n)
			}
		}
	}
}
