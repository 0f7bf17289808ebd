package remote

import (
	"context"
	"fmt"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/store"
)

// The resolver's .well-known cache keeps at most its size, however many
// server names are looked up, and a name it dropped is fetched again.
func TestWellKnownCacheIsBounded(t *testing.T) {
	r, hits := fakeResolver(t, serve(`{"m.server":"m.example.org:443"}`, nil), nil)
	r.wellKnown = cache.NewLRU[string, wellKnownEntry](8)
	for i := 0; i < 40; i++ {
		if _, err := r.Resolve(context.Background(), fmt.Sprintf("s%d.example.org", i)); err != nil {
			t.Fatal(err)
		}
		if n := r.wellKnown.Len(); n > 8 {
			t.Fatalf("after %d names: %d cached, limit 8", i+1, n)
		}
	}
	before := hits.Load()
	if _, err := r.Resolve(context.Background(), "s0.example.org"); err != nil {
		t.Fatal(err)
	}
	if hits.Load() != before+1 {
		t.Fatal("a dropped name was not fetched again")
	}
}

// The transport keeps one HTTP transport per TLS name, at most
// discoveryCacheSize of them.
func TestTransportsAreBounded(t *testing.T) {
	tr := NewTransport(NewResolver(nil, nil, nil), nil, nil)
	for i := 0; i < discoveryCacheSize+100; i++ {
		tr.transport(fmt.Sprintf("s%d.example.org", i))
	}
	if n := tr.byTLSName.Len(); n > discoveryCacheSize {
		t.Fatalf("%d transports kept, limit %d", n, discoveryCacheSize)
	}
	if tr.transport("x.example.org") != tr.transport("x.example.org") {
		t.Fatal("the same name got two transports")
	}
}

// The key ring's memory keeps at most keyCacheSize keys; the rest are
// read from the database again when asked for.
func TestKeyRingMemoryIsBounded(t *testing.T) {
	k := NewKeyRing("hs1.test", signing.Key{}, nil, nil, nil, nil).KeyDatabase.(*keyDB)
	keys := make([]store.ServerKey, keyCacheSize+100)
	for i := range keys {
		keys[i] = store.ServerKey{ServerName: fmt.Sprintf("s%d.example.org", i), KeyID: "ed25519:a", VerifyKey: "AAAA", ValidUntilTS: 1 << 50}
	}
	k.remember(keys)
	if n := k.mem.Len(); n > keyCacheSize {
		t.Fatalf("%d keys in memory, limit %d", n, keyCacheSize)
	}
	if _, ok := k.mem.Get(gomatrixserverlib.PublicKeyLookupRequest{ServerName: spec.ServerName(keys[len(keys)-1].ServerName), KeyID: "ed25519:a"}); !ok {
		t.Fatal("the newest key is not in memory")
	}
}

// The sender remembers at most discoveryCacheSize servers as up, however
// many reach it; one it forgot is read from the store again.
func TestSenderUpIsBounded(t *testing.T) {
	st := &destStore{states: map[string]store.DestinationState{}, queued: map[string][]string{}}
	s := NewSender(SenderOptions{ServerName: "hs1.test", Store: st})
	ctx := context.Background()
	for i := 0; i < discoveryCacheSize+100; i++ {
		s.RemoteUp(ctx, fmt.Sprintf("s%d.example.org", i))
	}
	if n := s.up.Len(); n > discoveryCacheSize {
		t.Fatalf("%d servers remembered as up, limit %d", n, discoveryCacheSize)
	}
	reads := st.reads
	s.RemoteUp(ctx, "s0.example.org")
	if st.reads != reads+1 {
		t.Fatal("a forgotten server was not read again")
	}
}
