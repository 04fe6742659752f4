package connect

import (
	"context"
	"errors"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

// storeRegistrations keeps the upstream OAuth client's registrations (DCR results, CIMD and
// manual clients) in the gateway's store, so every replica and every restart reuses them.
type storeRegistrations struct{ s store.ClientRegistrations }

func (a storeRegistrations) GetRegistration(ctx context.Context, k upstream.RegistrationKey) (*upstream.Registration, error) {
	r, err := a.s.GetClientRegistration(ctx, store.ClientRegistrationKey(k))
	if errors.Is(err, store.ErrNotFound) {
		return nil, upstream.ErrNoRegistration
	}
	if err != nil {
		return nil, err
	}
	return &upstream.Registration{RegistrationKey: upstream.RegistrationKey(r.ClientRegistrationKey), Method: r.Method, ClientID: r.ClientID,
		ClientSecret: r.ClientSecret, AuthMethod: r.AuthMethod, RegisteredAt: r.RegisteredAt, ExpiresAt: r.ExpiresAt}, nil
}

func (a storeRegistrations) PutRegistration(ctx context.Context, r *upstream.Registration) error {
	return a.s.PutClientRegistration(ctx, &store.ClientRegistration{ClientRegistrationKey: store.ClientRegistrationKey(r.RegistrationKey),
		Method: r.Method, ClientID: r.ClientID, ClientSecret: r.ClientSecret, AuthMethod: r.AuthMethod, RegisteredAt: r.RegisteredAt, ExpiresAt: r.ExpiresAt})
}

func (a storeRegistrations) DeleteRegistrations(ctx context.Context, upstreamID string) (int, error) {
	return a.s.DeleteClientRegistrations(ctx, upstreamID)
}

var _ upstream.RegistrationCache = storeRegistrations{}
