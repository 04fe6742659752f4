package connect

import (
	"slices"
	"testing"

	"github.com/mcpgate/mcpgate/internal/policy"
	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/upstream"
)

func stagedSpec(id, url string) policy.UpstreamSpec {
	return policy.UpstreamSpec{Upstream: upstream.Upstream{ID: id, URL: url, DisplayName: id}, Mode: store.ModeUser}
}

func upstreamIDs(m *Manager) []string {
	var ids []string
	for _, u := range m.Upstreams() {
		ids = append(ids, u.ID)
	}
	slices.Sort(ids)
	return ids
}

// TestStagingCommit: a staged configuration changes nothing until Commit; Commit replaces the
// manager's upstreams, reports those whose OAuth settings changed, and keeps the latest challenge
// of those that did not change.
func TestStagingCommit(t *testing.T) {
	m := &Manager{upstreams: map[string]*Upstream{}, engine: upstream.New(upstream.Options{})}
	first := m.Stage()
	for _, sp := range []policy.UpstreamSpec{stagedSpec("kept", "https://kept.example/mcp"), stagedSpec("moved", "https://a.example/mcp"), stagedSpec("gone", "https://gone.example/mcp")} {
		if _, err := first.Attach(sp); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := first.Attach(stagedSpec("kept", "https://other.example/mcp")); err == nil {
		t.Fatal("an id attached twice in one configuration was accepted")
	}
	if ids := upstreamIDs(m); len(ids) != 0 {
		t.Fatalf("before Commit: %v", ids)
	}
	if changed := first.Commit(); len(changed) != 0 {
		t.Fatalf("first commit changed %v", changed)
	}
	kept, _ := m.Upstream("kept")
	kept.RememberChallenge(upstream.BearerChallenge{ResourceMetadata: "https://kept.example/.well-known/oauth-protected-resource", Scope: "read"})

	second := m.Stage()
	for _, sp := range []policy.UpstreamSpec{stagedSpec("kept", "https://kept.example/mcp"), stagedSpec("moved", "https://b.example/mcp"), stagedSpec("new", "https://new.example/mcp")} {
		if _, err := second.Attach(sp); err != nil {
			t.Fatal(err)
		}
	}
	if ids := upstreamIDs(m); !slices.Equal(ids, []string{"gone", "kept", "moved"}) {
		t.Fatalf("a staged configuration changed the manager: %v", ids)
	}
	if changed := second.Commit(); !slices.Equal(changed, []string{"moved"}) {
		t.Fatalf("changed = %v, want [moved]", changed)
	}
	if ids := upstreamIDs(m); !slices.Equal(ids, []string{"kept", "moved", "new"}) {
		t.Fatalf("after Commit: %v", ids)
	}
	now, _ := m.Upstream("kept")
	if now == kept || now.Challenge().Scope != "read" {
		t.Fatalf("the unchanged upstream lost its challenge: %+v", now.Challenge())
	}
	if moved, _ := m.Upstream("moved"); moved.URL != "https://b.example/mcp" {
		t.Fatalf("moved upstream: %s", moved.URL)
	}
}
