package admin_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestAdminMediaLastAccess: downloading or thumbnailing local media
// records its last access (media info and a user's media list show it,
// null for media never read), and delete by date (before_ts) keeps media
// read since, while it deletes media stored before and never read; the
// time of a read just before a stop is written by the stop.
func TestAdminMediaLastAccess(t *testing.T) {
	testserver.EachEngine(t, withSecret, func(t *testing.T, s *testserver.Server) {
		admin := s.RegisterAdmin("root", "root password").AccessToken
		alice := userToken(t, s, admin, "alice", "alice pw")
		read, thumbed, unread := amUpload(t, s, alice, amPNG(t, 32, 32, 1)), amUpload(t, s, alice, amPNG(t, 32, 32, 2)), amUpload(t, s, alice, amPNG(t, 32, 32, 3))
		info := func(id string) map[string]any {
			t.Helper()
			status, body := s.Do(t, "GET", admBase+"/media/"+s.Config.ServerName+"/"+id, admin, nil)
			testserver.WantStatus(t, "media info", status, body, http.StatusOK)
			return body["media_info"].(map[string]any)
		}
		if got := info(read)["last_access_ts"]; got != nil {
			t.Fatalf("last_access_ts of unread media: %v", got)
		}
		time.Sleep(5 * time.Millisecond)
		cutoff := time.Now().UnixMilli()
		time.Sleep(5 * time.Millisecond)
		p := s.Config.ServerName + "/"
		if r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v1/media/download/"+p+read, alice, nil); r.Status != http.StatusOK {
			t.Fatalf("download: %d", r.Status)
		}
		if r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v1/media/thumbnail/"+p+thumbed+"?width=8&height=8&method=crop", alice, nil); r.Status != http.StatusOK {
			t.Fatalf("thumbnail: %d", r.Status)
		}
		for _, id := range []string{read, thumbed} {
			if ts, _ := info(id)["last_access_ts"].(float64); int64(ts) <= cutoff {
				t.Fatalf("last_access_ts of %s: %v, want after %d", id, ts, cutoff)
			}
		}
		status, body := s.Do(t, "GET", admBase+"/users/"+url.PathEscape(s.UserID("alice"))+"/media?order_by=last_access_ts&dir=b", admin, nil)
		testserver.WantStatus(t, "user media", status, body, http.StatusOK)
		media := body["media"].([]any)
		if len(media) != 3 || media[2].(map[string]any)["media_id"] != unread || media[2].(map[string]any)["last_access_ts"] != nil ||
			media[0].(map[string]any)["last_access_ts"] == nil {
			t.Fatalf("user media by last access: %v", media)
		}

		// A read just before a stop is written by the stop.
		late := amUpload(t, s, alice, amPNG(t, 32, 32, 4))
		if r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v1/media/download/"+p+late, alice, nil); r.Status != http.StatusOK {
			t.Fatalf("download: %d", r.Status)
		}
		s.Restart()
		if ts, _ := info(late)["last_access_ts"].(float64); int64(ts) <= cutoff {
			t.Fatalf("last_access_ts of media read just before the stop: %v", ts)
		}
		status, body = s.Do(t, http.MethodPost, admBase+"/media/delete?before_ts="+strconv.FormatInt(cutoff, 10), admin, map[string]any{})
		testserver.WantStatus(t, "delete by date", status, body, http.StatusOK)
		if fmt.Sprint(body["deleted_media"], body["total"]) != "["+unread+"] 1" {
			t.Fatalf("delete by date: %v, want only the unread %s", body, unread)
		}
		for _, id := range []string{read, thumbed, late} {
			if r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v1/media/download/"+p+id, alice, nil); r.Status != http.StatusOK {
				t.Fatalf("recently read media %s gone: %d", id, r.Status)
			}
		}
		// Once the cutoff passes their last read, they go too.
		time.Sleep(5 * time.Millisecond)
		status, body = s.Do(t, http.MethodPost, admBase+"/media/delete?before_ts="+strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10), admin, map[string]any{})
		testserver.WantStatus(t, "delete by later date", status, body, http.StatusOK)
		if body["total"] != float64(3) {
			t.Fatalf("delete by a later date: %v", body)
		}
	})
}
