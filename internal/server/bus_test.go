package server_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/presence"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/receipts"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/server"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/typing"
)

// TestBusListeners: every change a listener cares about travels over
// the one bus, and its listeners are the ones subscribed while the
// services were built (the services have no callback fields left to
// patch afterwards). /sync hears of every kind; new events reach it
// first, after presence's roommate cache (a woken /sync reads it), then
// push, search and guests, in the old fan-out's order;
// federation hears of local typing, receipts, presence, key changes and
// joins, and only when federation is on; sliding sync hears of deleted
// devices, whose connections it ends.
func TestBusListeners(t *testing.T) {
	testdb.ForEach(t, func(t *testing.T, dbURL string) {
		for _, fed := range []bool{true, false} {
			cfg := testserver.Config(t, dbURL)
			cfg.Federation.Enabled = fed
			cfg.Presence.Enabled = true
			s, err := server.New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string][]string{
				rooms.TopicEvent:         {"presence-roommates", "sync", "reputation-media-rooms", "push", "search-indexer", "guests", "delayed-events", "reputation", "metrics"},
				rooms.TopicAdvanced:      {"sync", "search-indexer"},
				typing.TopicChanged:      {"sync"},
				receipts.TopicStored:     {"sync"},
				presence.TopicChanged:    {"sync"},
				accountdata.TopicChanged: {"sync", "push-rules", "reputation-users"},
				push.TopicCountsChanged:  {"sync"},
				keys.TopicChanged:        {"sync"},
				typing.TopicLocal:        nil,
				receipts.TopicLocal:      nil,
				presence.TopicLocal:      nil,
				keys.TopicDevice:         {"sliding-sync"},
				keys.TopicCrossSigning:   nil,
			}
			if fed {
				want[typing.TopicLocal] = []string{"federation.typing"}
				want[receipts.TopicLocal] = []string{"federation.receipts"}
				want[presence.TopicLocal] = []string{"federation.presence"}
				want[rooms.TopicEvent] = []string{"presence-roommates", "sync", "reputation-media-rooms", "push", "search-indexer", "guests", "federation.join-presence", "federation.join-device-lists", "delayed-events", "reputation", "metrics"}
				want[rooms.TopicAdvanced] = append(want[rooms.TopicAdvanced], "federation-sender")
				want[keys.TopicDevice] = []string{"federation.device_list", "sliding-sync"}
				want[keys.TopicCrossSigning] = []string{"federation.signing_keys"}
			}
			for topic, names := range want {
				if got := server.BusListeners(s, topic); !slices.Equal(got, names) {
					t.Errorf("federation %v: listeners of %s = %v, want %v", fed, topic, got, names)
				}
			}
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	})
}
