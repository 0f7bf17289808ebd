package admin_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// amPNG is a w x h image whose bytes differ with seed.
func amPNG(t *testing.T, w, h int, seed uint8) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), seed, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// amUpload uploads bytes and returns the media ID.
func amUpload(t *testing.T, s *testserver.Server, token string, data []byte) string {
	t.Helper()
	r := testserver.Send(t, nil, http.MethodPost, s.URL+"/_matrix/media/v3/upload?filename=a.png", token, data, "Content-Type", "image/png")
	if r.Status != http.StatusOK {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
	uri, _ := r.JSON["content_uri"].(string)
	prefix := "mxc://" + s.Config.ServerName + "/"
	if !strings.HasPrefix(uri, prefix) {
		t.Fatalf("upload: content_uri %q", uri)
	}
	return strings.TrimPrefix(uri, prefix)
}

// amServed reports the statuses of a client download, a thumbnail and
// the legacy download of server/id through s.
func amServed(t *testing.T, s *testserver.Server, token, server, id string) (download, thumbnail, legacy int) {
	t.Helper()
	p := server + "/" + id
	download = testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v1/media/download/"+p, token, nil).Status
	thumbnail = testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v1/media/thumbnail/"+p+"?width=16&height=16&method=crop", token, nil).Status
	legacy = testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/media/v3/download/"+p, "", nil).Status
	return
}

func amWantServed(t *testing.T, what string, s *testserver.Server, token, server, id string, want int) {
	t.Helper()
	d, th, l := amServed(t, s, token, server, id)
	if d != want || th != want || l != want {
		t.Fatalf("%s: download %d, thumbnail %d, legacy download %d; want %d", what, d, th, l, want)
	}
}

// amFiles counts the files in a server's media storage.
func amFiles(t *testing.T, s *testserver.Server) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(s.Config.DataDir, "media"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "tmp" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return n
}

func amMutate(_ int, c *config.Config) {
	c.Registration.SharedSecret = admSecret
	// The legacy endpoints serve new media, so that they show the quarantine.
	c.Media.EnableAuthenticatedMedia = false
}

func amPost(t *testing.T, s *testserver.Server, token, path string, wantStatus int) map[string]any {
	t.Helper()
	status, body := s.Do(t, http.MethodPost, admBase+path, token, map[string]any{})
	testserver.WantStatus(t, "POST "+path, status, body, wantStatus)
	return body
}

// TestAdminMediaQuarantine: quarantine by media ID, by room and by user
// hides media from the client download and thumbnail endpoints, the
// legacy ones and the federation ones; media with the same bytes,
// uploaded later, is quarantined too; protected media escapes the room
// and user quarantines; unquarantine serves again. On another server,
// quarantined remote media, cached or not, is refused and never fetched.
func TestAdminMediaQuarantine(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, amMutate, func(t *testing.T, n *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := n.Servers[0], n.Servers[1]
		admin1, admin2 := hs1.RegisterAdmin("root", "pw-root"), hs2.RegisterAdmin("root", "pw-root")
		alice, bob := hs1.Register("alice", "pw-alice"), hs2.Register("bob", "pw-bob")
		at, bt := alice.AccessToken, bob.AccessToken

		// By media ID.
		data := amPNG(t, 64, 64, 1)
		a := amUpload(t, hs1, at, data)
		amWantServed(t, "before quarantine", hs1, at, "hs1.test", a, http.StatusOK)
		if st, _ := n.SignedRequest(t, hs2, hs1, http.MethodGet, "/_matrix/federation/v1/media/download/"+a, nil); st != http.StatusOK {
			t.Fatalf("federation download before quarantine: %d", st)
		}
		amPost(t, hs1, admin1.AccessToken, "/media/quarantine/hs1.test/"+a, http.StatusOK)
		amWantServed(t, "quarantined", hs1, at, "hs1.test", a, http.StatusNotFound)
		r := testserver.Send(t, nil, http.MethodGet, hs1.URL+"/_matrix/client/v1/media/download/hs1.test/"+a, at, nil)
		testserver.WantError(t, "quarantined download", r.Status, r.JSON, http.StatusNotFound, "M_NOT_FOUND")
		// Synapse's bypass: for server admins only, and only when asked.
		bypass := hs1.URL + "/_matrix/client/v1/media/download/hs1.test/" + a + "?admin_unsafely_bypass_quarantine=true"
		if r := testserver.Send(t, nil, http.MethodGet, bypass, admin1.AccessToken, nil); r.Status != http.StatusOK || !bytes.Equal(r.Raw, data) {
			t.Fatalf("admin bypassing the quarantine: %d", r.Status)
		}
		if d, th, _ := amServed(t, hs1, admin1.AccessToken, "hs1.test", a); d != http.StatusNotFound || th != http.StatusNotFound {
			t.Fatalf("admin without the bypass: download %d thumbnail %d", d, th)
		}
		if r := testserver.Send(t, nil, http.MethodGet, bypass, at, nil); r.Status != http.StatusNotFound {
			t.Fatalf("a user asking to bypass the quarantine: %d", r.Status)
		}
		for _, p := range []string{"/_matrix/federation/v1/media/download/" + a, "/_matrix/federation/v1/media/thumbnail/" + a + "?width=16&height=16&method=crop"} {
			st, body := n.SignedRequest(t, hs2, hs1, http.MethodGet, p, nil)
			testserver.WantError(t, "federation "+p, st, body, http.StatusNotFound, "M_NOT_FOUND")
		}
		status, info := hs1.Do(t, http.MethodGet, admBase+"/media/hs1.test/"+a, admin1.AccessToken, nil)
		testserver.WantStatus(t, "media info", status, info, http.StatusOK)
		mi, _ := info["media_info"].(map[string]any)
		if mi["quarantined_by"] != admin1.UserID.String() || mi["user_id"] != alice.UserID.String() || mi["media_length"] != float64(len(data)) {
			t.Fatalf("media info: %v", info)
		}
		// The same bytes uploaded again are quarantined at once.
		again := amUpload(t, hs1, at, data)
		amWantServed(t, "a new upload of quarantined bytes", hs1, at, "hs1.test", again, http.StatusNotFound)
		amPost(t, hs1, admin1.AccessToken, "/media/unquarantine/hs1.test/"+a, http.StatusOK)
		amWantServed(t, "unquarantined", hs1, at, "hs1.test", a, http.StatusOK)
		amWantServed(t, "the copy, unquarantined with it", hs1, at, "hs1.test", again, http.StatusOK)

		// Remote media: cached, then quarantined on hs2.
		c := amUpload(t, hs1, at, amPNG(t, 64, 64, 2))
		amWantServed(t, "remote media fetched", hs2, bt, "hs1.test", c, http.StatusOK)
		amPost(t, hs2, admin2.AccessToken, "/media/quarantine/hs1.test/"+c, http.StatusOK)
		d, th, _ := amServed(t, hs2, bt, "hs1.test", c)
		if d != http.StatusNotFound || th != http.StatusNotFound {
			t.Fatalf("cached remote media quarantined: download %d thumbnail %d", d, th)
		}
		// Remote media never fetched, quarantined first: never fetched.
		files := amFiles(t, hs2)
		never := amUpload(t, hs1, at, amPNG(t, 64, 64, 3))
		amPost(t, hs2, admin2.AccessToken, "/media/quarantine/hs1.test/"+never, http.StatusOK)
		d, th, _ = amServed(t, hs2, bt, "hs1.test", never)
		if d != http.StatusNotFound || th != http.StatusNotFound || amFiles(t, hs2) != files {
			t.Fatalf("uncached remote media quarantined: download %d thumbnail %d, files %d -> %d", d, th, files, amFiles(t, hs2))
		}
		// The remote cache purge keeps quarantined media, still refused.
		amPost(t, hs2, admin2.AccessToken, "/purge_media_cache?before_ts="+strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10), http.StatusOK)
		if d, _, _ := amServed(t, hs2, bt, "hs1.test", c); d != http.StatusNotFound {
			t.Fatalf("quarantined remote media after the cache purge: %d", d)
		}
		// Unquarantined, the never-fetched media is fetched now.
		amPost(t, hs2, admin2.AccessToken, "/media/unquarantine/hs1.test/"+never, http.StatusOK)
		if d, _, _ := amServed(t, hs2, bt, "hs1.test", never); d != http.StatusOK {
			t.Fatalf("unquarantined remote media: %d", d)
		}

		// By room: local and remote media the events name, except protected.
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		if err != nil {
			t.Fatal(err)
		}
		inRoom := amUpload(t, hs1, at, amPNG(t, 64, 64, 4))
		thumb := amUpload(t, hs1, at, amPNG(t, 64, 64, 5))
		sticker := amUpload(t, hs1, at, amPNG(t, 64, 64, 6))
		amPost(t, hs1, admin1.AccessToken, "/media/protect/"+sticker, http.StatusOK)
		bobs := amUpload(t, hs2, bt, amPNG(t, 64, 64, 7))
		for _, content := range []map[string]any{
			{"msgtype": "m.image", "body": "a", "url": "mxc://hs1.test/" + inRoom, "info": map[string]any{"thumbnail_url": "mxc://hs1.test/" + thumb}},
			{"msgtype": "m.image", "body": "s", "url": "mxc://hs1.test/" + sticker},
			{"msgtype": "m.image", "body": "r", "url": "mxc://hs2.test/" + bobs},
			{"msgtype": "m.image", "body": "bad", "url": "not a uri"},
		} {
			if _, err := alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage, content); err != nil {
				t.Fatal(err)
			}
		}
		status, list := hs1.Do(t, http.MethodGet, admBase+"/room/"+room.RoomID.String()+"/media", admin1.AccessToken, nil)
		testserver.WantStatus(t, "room media", status, list, http.StatusOK)
		if got := fmt.Sprint(list["local"], list["remote"]); got != fmt.Sprintf("[mxc://hs1.test/%s mxc://hs1.test/%s mxc://hs1.test/%s] [mxc://hs2.test/%s]", inRoom, thumb, sticker, bobs) {
			t.Fatalf("room media: %v", list)
		}
		status, list = hs1.Do(t, http.MethodGet, admBase+"/room/!nope:hs1.test/media", admin1.AccessToken, nil)
		testserver.WantError(t, "media of an unknown room", status, list, http.StatusNotFound, "M_NOT_FOUND")
		body := amPost(t, hs1, admin1.AccessToken, "/room/"+room.RoomID.String()+"/media/quarantine", http.StatusOK)
		if body["num_quarantined"] != float64(3) {
			t.Fatalf("room quarantine: %v, want 3 (two local, one remote)", body)
		}
		amWantServed(t, "room media", hs1, at, "hs1.test", inRoom, http.StatusNotFound)
		amWantServed(t, "room thumbnail media", hs1, at, "hs1.test", thumb, http.StatusNotFound)
		amWantServed(t, "protected room media", hs1, at, "hs1.test", sticker, http.StatusOK)
		if d, _, _ := amServed(t, hs1, at, "hs2.test", bobs); d != http.StatusNotFound {
			t.Fatalf("remote room media on hs1: %d", d)
		}
		if d, _, _ := amServed(t, hs2, bt, "hs2.test", bobs); d != http.StatusOK {
			t.Fatalf("bob's media on his own server: %d", d)
		}

		// By user: alice's media, except protected.
		mine := amUpload(t, hs1, at, amPNG(t, 64, 64, 8))
		body = amPost(t, hs1, admin1.AccessToken, "/user/"+alice.UserID.String()+"/media/quarantine", http.StatusOK)
		if q, _ := body["num_quarantined"].(float64); q < 1 {
			t.Fatalf("user quarantine: %v", body)
		}
		amWantServed(t, "user media", hs1, at, "hs1.test", mine, http.StatusNotFound)
		amWantServed(t, "protected user media", hs1, at, "hs1.test", sticker, http.StatusOK)
		// Unprotected, a quarantine by ID reaches it.
		amPost(t, hs1, admin1.AccessToken, "/media/unprotect/"+sticker, http.StatusOK)
		amPost(t, hs1, admin1.AccessToken, "/media/quarantine/hs1.test/"+sticker, http.StatusOK)
		amWantServed(t, "unprotected, quarantined", hs1, at, "hs1.test", sticker, http.StatusNotFound)
	})
}

// TestAdminMediaDelete: delete by ID (file and thumbnails gone), by date
// and size (keeping avatars unless asked), and the remote cache purge,
// after which remote media is fetched again.
func TestAdminMediaDelete(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, amMutate, func(t *testing.T, n *testserver.Network) {
		ctx := context.Background()
		hs1, hs2 := n.Servers[0], n.Servers[1]
		admin1, admin2 := hs1.RegisterAdmin("root", "pw-root"), hs2.RegisterAdmin("root", "pw-root")
		alice, bob := hs1.Register("alice", "pw-alice"), hs2.Register("bob", "pw-bob")
		at, tok := alice.AccessToken, admin1.AccessToken

		x := amUpload(t, hs1, at, amPNG(t, 64, 64, 1))
		amWantServed(t, "before delete", hs1, at, "hs1.test", x, http.StatusOK) // makes a thumbnail
		if amFiles(t, hs1) < 2 {
			t.Fatalf("expected the media and a thumbnail on disk, got %d files", amFiles(t, hs1))
		}
		status, body := hs1.Do(t, http.MethodDelete, admBase+"/media/hs1.test/"+x, tok, nil)
		testserver.WantStatus(t, "delete", status, body, http.StatusOK)
		if fmt.Sprint(body["deleted_media"], body["total"]) != "["+x+"] 1" {
			t.Fatalf("delete: %v", body)
		}
		amWantServed(t, "deleted", hs1, at, "hs1.test", x, http.StatusNotFound)
		if f := amFiles(t, hs1); f != 0 {
			t.Fatalf("%d files left after deleting the only media", f)
		}
		status, body = hs1.Do(t, http.MethodDelete, admBase+"/media/hs1.test/"+x, tok, nil)
		testserver.WantError(t, "delete again", status, body, http.StatusNotFound, "M_NOT_FOUND")
		status, body = hs1.Do(t, http.MethodDelete, admBase+"/media/hs2.test/"+x, tok, nil)
		testserver.WantError(t, "delete remote", status, body, http.StatusBadRequest, "M_INVALID_PARAM")

		// By date and size.
		small := amUpload(t, hs1, at, []byte("tiny"))
		big := amUpload(t, hs1, at, amPNG(t, 64, 64, 2))
		avatar := amUpload(t, hs1, at, amPNG(t, 64, 64, 3))
		if err := alice.SetAvatarURL(ctx, mustMXC(t, "mxc://hs1.test/"+avatar)); err != nil {
			t.Fatal(err)
		}
		future := strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10)
		status, body = hs1.Do(t, http.MethodPost, admBase+"/media/delete?before_ts="+future+"&size_gt=100", tok, map[string]any{})
		testserver.WantStatus(t, "delete by date", status, body, http.StatusOK)
		if fmt.Sprint(body["deleted_media"], body["total"]) != "["+big+"] 1" {
			t.Fatalf("delete by date and size: %v, want only %s", body, big)
		}
		status, body = hs1.Do(t, http.MethodPost, admBase+"/media/hs1.test/delete?before_ts="+future+"&keep_profiles=false", tok, map[string]any{})
		testserver.WantStatus(t, "legacy delete by date", status, body, http.StatusOK)
		if body["total"] != float64(2) {
			t.Fatalf("delete with keep_profiles=false: %v, want %s and %s", body, small, avatar)
		}
		for _, bad := range []struct{ path, code string }{
			{"/media/delete", "M_MISSING_PARAM"},
			{"/media/delete?before_ts=1000", "M_INVALID_PARAM"},
			{"/media/delete?before_ts=x", "M_INVALID_PARAM"},
			{"/media/delete?before_ts=" + future + "&size_gt=-1", "M_INVALID_PARAM"},
			{"/media/delete?before_ts=" + future + "&keep_profiles=maybe", "M_INVALID_PARAM"},
			{"/media/hs2.test/delete?before_ts=" + future, "M_INVALID_PARAM"},
			{"/purge_media_cache", "M_MISSING_PARAM"},
		} {
			status, body = hs1.Do(t, http.MethodPost, admBase+bad.path, tok, map[string]any{})
			testserver.WantError(t, bad.path, status, body, http.StatusBadRequest, bad.code)
		}

		// The remote cache purge: the copy goes, and is fetched again.
		y := amUpload(t, hs1, at, amPNG(t, 64, 64, 4))
		if d, _, _ := amServed(t, hs2, bob.AccessToken, "hs1.test", y); d != http.StatusOK {
			t.Fatalf("remote fetch: %d", d)
		}
		// Only a thumbnail of z is asked for: hs1 makes it, hs2 keeps it alone.
		z := amUpload(t, hs1, at, amPNG(t, 200, 200, 6))
		files := amFiles(t, hs2)
		if r := testserver.Send(t, nil, http.MethodGet, hs2.URL+"/_matrix/client/v1/media/thumbnail/hs1.test/"+z+"?width=16&height=16&method=crop",
			bob.AccessToken, nil); r.Status != http.StatusOK || amFiles(t, hs2) != files+1 {
			t.Fatalf("remote thumbnail: %d, files %d -> %d", r.Status, files, amFiles(t, hs2))
		}
		local := amUpload(t, hs2, bob.AccessToken, amPNG(t, 64, 64, 5))
		// y, its thumbnail and z's thumbnail are the remote files.
		files = amFiles(t, hs2) - 3
		status, body = hs2.Do(t, http.MethodPost, admBase+"/purge_media_cache?before_ts=1", admin2.AccessToken, map[string]any{})
		testserver.WantError(t, "purge with a 1970 timestamp", status, body, http.StatusBadRequest, "M_INVALID_PARAM")
		status, body = hs2.Do(t, http.MethodPost, admBase+"/purge_media_cache?before_ts="+future, admin2.AccessToken, map[string]any{})
		testserver.WantStatus(t, "purge", status, body, http.StatusOK)
		if body["deleted"] != float64(2) {
			t.Fatalf("purge: %v, want the one remote copy and the one remote thumbnail", body)
		}
		if f := amFiles(t, hs2); f != files {
			t.Fatalf("%d files after the purge, want %d (bob's own upload and its thumbnails)", f, files)
		}
		if d, _, _ := amServed(t, hs2, bob.AccessToken, "hs2.test", local); d != http.StatusOK {
			t.Fatalf("local media after the remote purge: %d", d)
		}
		hs1.Stop()
		if d, _, _ := amServed(t, hs2, bob.AccessToken, "hs1.test", y); d == http.StatusOK {
			t.Fatal("purged remote media still served with its server down")
		}
		hs1.Restart()
		if d, _, _ := amServed(t, hs2, bob.AccessToken, "hs1.test", y); d != http.StatusOK {
			t.Fatalf("purged remote media fetched again: %d", d)
		}
	})
}

func mustMXC(t *testing.T, uri string) id.ContentURI {
	t.Helper()
	c, err := id.ParseContentURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
