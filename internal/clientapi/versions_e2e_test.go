package clientapi_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestOnlyAdvertisedRoomVersions: gomatrixserverlib's experimental room
// versions, which /capabilities does not list and Myelin does not
// implement, can neither be created nor upgraded to (400
// M_UNSUPPORTED_ROOM_VERSION, as Synapse answers for a version it does
// not know); every advertised one can be created.
func TestOnlyAdvertisedRoomVersions(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		tok := s.Register("alice", "pw-alice-1").AccessToken
		create := func(v string) testserver.Response {
			return testserver.Send(t, nil, "POST", s.URL+"/_matrix/client/v3/createRoom", tok, map[string]any{"room_version": v})
		}
		caps := testserver.Send(t, nil, "GET", s.URL+"/_matrix/client/v3/capabilities", tok, nil)
		available := caps.JSON["capabilities"].(map[string]any)["m.room_versions"].(map[string]any)["available"].(map[string]any)
		if len(available) == 0 {
			t.Fatalf("no room versions advertised: %s", caps.Raw)
		}
		var room string
		for v := range available {
			r := create(v)
			testserver.WantStatus(t, "createRoom version "+v, r.Status, r.JSON, http.StatusOK)
			room, _ = r.JSON["room_id"].(string)
		}
		for _, v := range []string{"org.matrix.msc4014", "org.matrix.hydra.11", "org.matrix.msc4242.12"} {
			r := create(v)
			if r.Status != http.StatusBadRequest || r.JSON["errcode"] != "M_UNSUPPORTED_ROOM_VERSION" {
				t.Errorf("createRoom version %s: %d %s, want 400 M_UNSUPPORTED_ROOM_VERSION", v, r.Status, r.Raw)
			}
			r = testserver.Send(t, nil, "POST", s.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(room)+"/upgrade", tok, map[string]any{"new_version": v})
			if r.Status != http.StatusBadRequest || r.JSON["errcode"] != "M_UNSUPPORTED_ROOM_VERSION" {
				t.Errorf("upgrade to %s: %d %s, want 400 M_UNSUPPORTED_ROOM_VERSION", v, r.Status, r.Raw)
			}
		}
	})
}
