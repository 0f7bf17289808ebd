package media_test

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"testing"

	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestRemoteMedia: bob on hs2 downloads and thumbnails alice's media on
// hs1 through his own server, which fetches it over the federation media
// endpoints (X-Matrix signed, multipart answers) and keeps a copy that
// still serves once hs1 is gone; unknown remote media is 404; hs1 does
// not answer unsigned federation media requests.
func TestRemoteMedia(t *testing.T) {
	testserver.EachEngineNetwork(t, 2, nil, func(t *testing.T, n *testserver.Network) {
		hs1, hs2 := n.Servers[0], n.Servers[1]
		alice, bob := hs1.Register("alice", "pw-alice"), hs2.Register("bob", "pw-bob")
		data := pngBytes(t, 400, 300)
		uri := upload(t, hs1, alice.AccessToken, "image/png", "remote.png", data)

		r := get(t, hs2, bob.AccessToken, "/_matrix/client/v1/media/download/"+mediaPath(uri))
		if r.Status != http.StatusOK || !bytes.Equal(r.Raw, data) {
			t.Fatalf("remote download: %d (%d bytes) %s", r.Status, len(r.Raw), r.Header)
		}
		if ct, d := r.Header.Get("Content-Type"), r.Header.Get("Content-Disposition"); ct != "image/png" || d != "inline; filename=remote.png" {
			t.Fatalf("remote download headers: %q %q", ct, d)
		}
		if len(mediaFiles(t, hs2)) == 0 {
			t.Fatal("hs2 kept no copy of the remote media")
		}
		// A thumbnail of media not cached yet is asked of its server.
		thumbURI := upload(t, hs1, alice.AccessToken, "image/jpeg", "t.jpg", jpegBytes(t, 640, 640))
		r = get(t, hs2, bob.AccessToken, "/_matrix/client/v1/media/thumbnail/"+mediaPath(thumbURI)+"?width=96&height=96&method=crop")
		if r.Status != http.StatusOK {
			t.Fatalf("remote thumbnail: %d %s", r.Status, r.Raw)
		}
		if format, w, h := dims(t, "remote thumbnail", r.Raw); format != "jpeg" || w != 96 || h != 96 {
			t.Fatalf("remote thumbnail: %s %dx%d", format, w, h)
		}
		r = get(t, hs2, bob.AccessToken, "/_matrix/client/v1/media/download/hs1.test/doesNotExist")
		testserver.WantError(t, "unknown remote media", r.Status, r.JSON, http.StatusNotFound, "M_NOT_FOUND")
		// Newly cached remote media counts as new for the legacy freeze.
		r = get(t, hs2, "", "/_matrix/media/v3/download/"+mediaPath(uri))
		testserver.WantError(t, "cached remote media on the legacy endpoint", r.Status, r.JSON, http.StatusNotFound, "M_NOT_FOUND")

		st, body := n.SignedRequest(t, hs2, hs1, http.MethodGet, "/_matrix/federation/v1/media/download/doesNotExist", nil)
		testserver.WantError(t, "signed request for unknown media", st, body, http.StatusNotFound, "M_NOT_FOUND")
		mediaID := mediaPath(uri)[len("hs1.test/"):]
		if st, _ = n.SignedRequest(t, hs2, hs1, http.MethodGet, "/_matrix/federation/v1/media/download/"+mediaID, nil); st != http.StatusOK {
			t.Fatalf("signed federation download: %d", st)
		}
		_, forged, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		st, body = n.RequestSignedWith(t, "hs2.test", signing.Key{ID: "ed25519:forged", Private: forged}, hs1, http.MethodGet,
			"/_matrix/federation/v1/media/download/"+mediaID, nil)
		testserver.WantError(t, "a forged federation media request", st, body, http.StatusUnauthorized, "M_UNAUTHORIZED")

		hs1.Stop()
		r = get(t, hs2, bob.AccessToken, "/_matrix/client/v1/media/download/"+mediaPath(uri))
		if r.Status != http.StatusOK || !bytes.Equal(r.Raw, data) {
			t.Fatalf("cached download with hs1 stopped: %d", r.Status)
		}
		r = get(t, hs2, bob.AccessToken, "/_matrix/client/v1/media/thumbnail/"+mediaPath(uri)+"?width=32&height=32&method=crop")
		if format, w, h := dims(t, "thumbnail of cached remote media", r.Raw); r.Status != http.StatusOK || format != "png" || w != 32 || h != 32 {
			t.Fatalf("thumbnail of cached remote media: %d %s %dx%d", r.Status, format, w, h)
		}
	})
}
