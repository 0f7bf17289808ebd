package clientapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"maunium.net/go/mautrix"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestSyncSummaryHeroes: with more than five candidates the summary
// names the first five joined or invited members in user ID byte order,
// not the viewer, not those who left or were banned, on both databases:
// "@=x" comes first in bytes and last under glibc's en_US collation,
// which ignores punctuation and would name "@frank" instead, and "@a-x"
// comes before "@a_x" in bytes, after it under ICU's. A lazily loading
// incremental sync whose only member event is a new sender's, brought by
// lazy loading, carries no summary (unchanged, as in Synapse); one with
// a join in its timeline carries the summary again.
func TestSyncSummaryHeroes(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw")
		room := syCreate(t, alice, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		users := map[string]*mautrix.Client{}
		for _, name := range []string{"=x", "a_x", "a-x", "bob", "dave", "erin", "frank", "hank", "carol"} {
			users[name] = s.Register(name, "pw")
			if name != "carol" {
				syJoin(t, users[name], room)
			}
		}
		syInvite(t, alice, room, users["carol"].UserID)
		syLeave(t, users["dave"], room)
		if _, err := alice.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: users["erin"].UserID}); err != nil {
			t.Fatal(err)
		}
		var want []any
		for _, name := range []string{"=x", "a-x", "a_x", "bob", "carol"} {
			want = append(want, any(users[name].UserID.String()))
		}
		lazy := syFilter(map[string]any{"room": map[string]any{"state": map[string]any{"lazy_load_members": true}}})
		resp := sySync(t, alice, map[string]string{"filter": lazy})
		sum := syJoined(t, resp, room).Summary
		if heroes, _ := sum["m.heroes"].([]any); !slices.Equal(heroes, want) {
			t.Fatalf("initial sync heroes = %v, want %v", heroes, want)
		}
		if sum["m.joined_member_count"] != float64(7) || sum["m.invited_member_count"] != float64(1) {
			t.Fatalf("initial sync counts: %v", sum)
		}

		sySend(t, users["hank"], room, "hello")
		resp = sySince(t, alice, resp.NextBatch, "filter", lazy)
		if sum = syJoined(t, resp, room).Summary; sum != nil {
			t.Fatalf("incremental lazy sync whose only member state is the sender's carries a summary: %v", sum)
		}
		syJoin(t, users["carol"], room)
		resp = sySince(t, alice, resp.NextBatch, "filter", lazy)
		sum = syJoined(t, resp, room).Summary
		if heroes, _ := sum["m.heroes"].([]any); !slices.Equal(heroes, want) {
			t.Fatalf("incremental lazy sync heroes = %v, want %v (summary %v)", heroes, want, sum)
		}
		if sum["m.joined_member_count"] != float64(8) || sum["m.invited_member_count"] != float64(0) {
			t.Fatalf("incremental sync counts after a join: %v", sum)
		}

		r := testserver.Send(t, nil, http.MethodPost, s.URL+ssPath+"?timeout=0", alice.AccessToken, roomList(0, 9))
		var ss struct {
			Rooms map[string]struct {
				Heroes []struct {
					UserID string `json:"user_id"`
				} `json:"heroes"`
			} `json:"rooms"`
		}
		if err := json.Unmarshal(r.Raw, &ss); err != nil || r.Status != http.StatusOK {
			t.Fatalf("sliding sync: %d %v: %s", r.Status, err, r.Raw)
		}
		var ssHeroes []any
		for _, h := range ss.Rooms[room.String()].Heroes {
			ssHeroes = append(ssHeroes, any(h.UserID))
		}
		if !slices.Equal(ssHeroes, want) {
			t.Fatalf("sliding sync heroes = %v, want %v", ssHeroes, want)
		}
	})
}
