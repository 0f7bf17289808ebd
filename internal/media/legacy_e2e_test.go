package media_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/myelin-chat/myelin/internal/testserver"
	"github.com/myelin-chat/myelin/internal/testserver/peer"
)

// TestRemoteMediaLegacyFallback: media of a server that does not serve
// the federation download endpoint (it predates authenticated media) is
// fetched from its client download path, as Synapse does, whichever way
// it says it does not know the endpoint; a server that knows the
// endpoint but not the media is not asked twice.
func TestRemoteMediaLegacyFallback(t *testing.T) {
	peer.EachEngine(t, 1, nil, func(t *testing.T, net *testserver.Network, p *peer.Peer) {
		hs1 := net.Servers[0]
		alice := hs1.Register("alice", "pw-alice")
		data := pngBytes(t, 40, 30)
		for i, refusal := range []struct {
			name   string
			status int
		}{
			{"404 M_UNRECOGNIZED", http.StatusNotFound},
			{"400 M_UNRECOGNIZED (older Synapse)", http.StatusBadRequest},
			{"405", http.StatusMethodNotAllowed},
		} {
			t.Run(refusal.name, func(t *testing.T) {
				mediaID := "legacy" + string(rune('a'+i))
				p.AddMedia(mediaID, "image/png", data)
				p.Refuse(peer.MediaDownload, refusal.status)
				before := p.Hits(peer.LegacyMedia)
				r := get(t, hs1, alice.AccessToken, "/_matrix/client/v1/media/download/"+p.Name+"/"+mediaID)
				if r.Status != http.StatusOK || !bytes.Equal(r.Raw, data) {
					t.Fatalf("download: %d (%d bytes) %s", r.Status, len(r.Raw), r.Raw)
				}
				if ct := r.Header.Get("Content-Type"); ct != "image/png" {
					t.Fatalf("download: Content-Type %q", ct)
				}
				if p.Hits(peer.LegacyMedia) != before+1 {
					t.Fatalf("legacy path asked %d times", p.Hits(peer.LegacyMedia)-before)
				}
			})
		}
		t.Run("thumbnail", func(t *testing.T) {
			// The peer serves no federation thumbnail either: the
			// original comes from the legacy path and is thumbnailed here.
			p.AddMedia("legacythumb", "image/png", pngBytes(t, 400, 300))
			p.Refuse(peer.MediaDownload, http.StatusNotFound)
			r := get(t, hs1, alice.AccessToken, "/_matrix/client/v1/media/thumbnail/"+p.Name+"/legacythumb?width=32&height=32&method=crop")
			if r.Status != http.StatusOK {
				t.Fatalf("thumbnail: %d %s", r.Status, r.Raw)
			}
			if format, w, h := dims(t, "thumbnail", r.Raw); format == "" || w > 400 || h > 300 {
				t.Fatalf("thumbnail: %s %dx%d", format, w, h)
			}
		})
		t.Run("known endpoint, unknown media", func(t *testing.T) {
			p.Refuse(peer.MediaDownload, 0)
			before := p.Hits(peer.LegacyMedia)
			r := get(t, hs1, alice.AccessToken, "/_matrix/client/v1/media/download/"+p.Name+"/nosuchmedia")
			testserver.WantError(t, "unknown media", r.Status, r.JSON, http.StatusNotFound, "M_NOT_FOUND")
			if p.Hits(peer.LegacyMedia) != before {
				t.Fatal("the legacy path was asked for media the federation endpoint does not know")
			}
		})
		t.Run("authenticated endpoint preferred", func(t *testing.T) {
			p.AddMedia("modern", "text/plain", []byte("hello"))
			before := p.Hits(peer.LegacyMedia)
			r := get(t, hs1, alice.AccessToken, "/_matrix/client/v1/media/download/"+p.Name+"/modern")
			if r.Status != http.StatusOK || string(r.Raw) != "hello" || p.Hits(peer.LegacyMedia) != before {
				t.Fatalf("download: %d %q, legacy asked %d times", r.Status, r.Raw, p.Hits(peer.LegacyMedia)-before)
			}
		})
		t.Run("neither endpoint", func(t *testing.T) {
			p.AddMedia("nowhere", "text/plain", []byte("hidden"))
			p.Refuse(peer.MediaDownload, http.StatusNotFound)
			p.Refuse(peer.LegacyMedia, http.StatusNotFound)
			r := get(t, hs1, alice.AccessToken, "/_matrix/client/v1/media/download/"+p.Name+"/nowhere")
			testserver.WantError(t, "no endpoint", r.Status, r.JSON, http.StatusBadGateway, "M_UNKNOWN")
		})
	})
}
