package admin

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// FuzzRoomAdminParams: the room admin API's parsers of query strings
// (the room list's, /messages') and of deletion bodies never panic, and
// refuse what they cannot read with a Matrix 4xx error, never a 5xx.
func FuzzRoomAdminParams(f *testing.F) {
	f.Add("order_by=joined_members&dir=b&from=10&limit=5&search_term=abc", `{"block": true, "purge": false}`)
	f.Add("public_rooms=true&empty_rooms=0", `{"new_room_user_id": "@a:hs", "room_name": "x", "message": "y", "force_purge": true}`)
	f.Add("dir=f&from=s5&to=s1&limit=1000&filter=%7B%22types%22%3A%5B%22m.room.message%22%5D%7D", ``)
	f.Add("search_term=&order_by=x&from=-1", `{"block": "yes"}`)
	f.Add("from=s99999999999999999999&filter={", `[1]`)
	f.Add("", `{"purge_up_to_ts": 1.5, "delete_local_events": true, "purge_up_to_event_id": "$e"}`)
	f.Fuzz(func(t *testing.T, query, body string) {
		check := func(what string, err error) {
			if err == nil {
				return
			}
			me, ok := mxerr.As(err)
			if !ok || me.Status < 400 || me.Status >= 500 {
				t.Fatalf("%s: %v is not a Matrix 4xx error", what, err)
			}
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		lq, err := parseListQuery(q)
		check("list", err)
		if err == nil && (lq.From < 0 || lq.Limit < 0) {
			t.Fatalf("list query %+v", lq)
		}
		pg, err := parsePageQuery(q, 100)
		check("messages", err)
		if err == nil && (pg.limit < 0 || pg.limit > maxMessages || pg.filter == nil) {
			t.Fatalf("page %+v", pg)
		}
		r := httptest.NewRequest(http.MethodDelete, "/_synapse/admin/v2/rooms/x", bytes.NewBufferString(body))
		r.SetPathValue("roomId", "!room:hs")
		req, err := shutdownRequest(r, &httpapi.Caller{UserID: "@admin:hs"})
		check("delete body", err)
		if err == nil && req.RoomID != "!room:hs" {
			t.Fatalf("request %+v", req)
		}
		hr := httptest.NewRequest(http.MethodPost, "/_synapse/admin/v1/purge_history/x", bytes.NewBufferString(body))
		hr.SetPathValue("roomId", "!room:hs")
		_, err = historyRequest(hr, &httpapi.Caller{UserID: "@admin:hs"})
		check("purge history body", err)
	})
}
