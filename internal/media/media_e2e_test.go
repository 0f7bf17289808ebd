package media_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"net/http"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix/id"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// TestUploadAndDownload: two uploads of the same bytes get two media IDs
// and one file on disk; both download through the authenticated
// endpoint (and mautrix-go's helpers); the limits and errors hold.
func TestUploadAndDownload(t *testing.T) {
	testserver.EachEngine(t, func(c *config.Config) { c.Media.MaxUploadBytes = 1 << 20 }, func(t *testing.T, s *testserver.Server) {
		ctx := context.Background()
		alice := s.Register("alice", "pw-alice")
		data := []byte("hello, media repository")
		first := upload(t, s, alice.AccessToken, "text/plain", "hello.txt", data)
		resp, err := alice.UploadBytesWithName(ctx, data, "text/plain", "again.txt")
		if err != nil {
			t.Fatal(err)
		}
		second := resp.ContentURI.String()
		if first == second {
			t.Fatalf("two uploads share the URI %s", first)
		}
		files := mediaFiles(t, s)
		if len(files) != 1 {
			t.Fatalf("files on disk after two uploads of the same bytes: %v", files)
		}
		sum := sha256.Sum256(data)
		if want := hex.EncodeToString(sum[:]); !strings.HasSuffix(files[0], want) {
			t.Fatalf("stored file %s is not named by its SHA-256 %s", files[0], want)
		}
		for _, uri := range []string{first, second} {
			r := get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/"+mediaPath(uri))
			if r.Status != http.StatusOK || !bytes.Equal(r.Raw, data) {
				t.Fatalf("download %s: %d %q", uri, r.Status, r.Raw)
			}
			if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
				t.Fatalf("download %s: Content-Type %q", uri, ct)
			}
		}
		r := get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/"+mediaPath(first))
		if d := r.Header.Get("Content-Disposition"); d != "inline; filename=hello.txt" {
			t.Fatalf("Content-Disposition %q", d)
		}
		got, err := alice.DownloadBytes(ctx, id.MustParseContentURI(second))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("mautrix DownloadBytes: %q, %v", got, err)
		}
		// The optional last segment renames the file.
		r = get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/"+mediaPath(first)+"/other.txt")
		if d := r.Header.Get("Content-Disposition"); r.Status != http.StatusOK || d != "inline; filename=other.txt" {
			t.Fatalf("download with a file name: %d %q", r.Status, d)
		}

		r = get(t, s, "", "/_matrix/client/v1/media/download/"+mediaPath(first))
		testserver.WantError(t, "download without a token", r.Status, r.JSON, http.StatusUnauthorized, "M_MISSING_TOKEN")
		r = get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/hs1.test/nosuchmedia")
		testserver.WantError(t, "unknown media", r.Status, r.JSON, http.StatusNotFound, "M_NOT_FOUND")
		r = get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/hs1.test/bad.id")
		testserver.WantError(t, "a media ID outside the grammar", r.Status, r.JSON, http.StatusNotFound, "M_NOT_FOUND")
		st, body := s.Do(t, http.MethodGet, "/_matrix/client/v1/media/config", alice.AccessToken, nil)
		if st != http.StatusOK || body["m.upload.size"] != float64(1<<20) {
			t.Fatalf("media config: %d %v", st, body)
		}
		big := bytes.Repeat([]byte("x"), 1<<20+1)
		r = testserver.Send(t, nil, http.MethodPost, s.URL+"/_matrix/media/v3/upload", alice.AccessToken, big, "Content-Type", "application/octet-stream")
		testserver.WantError(t, "an upload over the limit", r.Status, r.JSON, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
		if n := len(mediaFiles(t, s)); n != 1 {
			t.Fatalf("a refused upload left files: %d", n)
		}
	})
}

// TestAsyncUpload: /create reserves a URI; downloads wait for its bytes
// (or time out with M_NOT_YET_UPLOADED); only its creator uploads, once.
func TestAsyncUpload(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice, bob := s.Register("alice", "pw-alice"), s.Register("bob", "pw-bob")
		st, body := s.Do(t, http.MethodPost, "/_matrix/media/v1/create", alice.AccessToken, nil)
		uri, _ := body["content_uri"].(string)
		if st != http.StatusOK || !strings.HasPrefix(uri, "mxc://hs1.test/") || body["unused_expires_at"] == nil {
			t.Fatalf("create: %d %v", st, body)
		}
		path := mediaPath(uri)
		r := get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/"+path+"?timeout_ms=50")
		testserver.WantError(t, "download before the upload", r.Status, r.JSON, http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED")

		var wg sync.WaitGroup
		var waited testserver.Response
		wg.Add(1)
		go func() {
			defer wg.Done()
			waited = testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v1/media/download/"+path+"?timeout_ms=30000", bob.AccessToken, nil)
		}()
		data := []byte("late bytes")
		put := func(token string) testserver.Response {
			return testserver.Send(t, nil, http.MethodPut, s.URL+"/_matrix/media/v3/upload/"+path+"?filename=late.txt", token, data, "Content-Type", "text/plain")
		}
		r = put(bob.AccessToken)
		testserver.WantError(t, "bob uploading to alice's URI", r.Status, r.JSON, http.StatusForbidden, "M_FORBIDDEN")
		if r = put(alice.AccessToken); r.Status != http.StatusOK {
			t.Fatalf("alice's upload: %d %s", r.Status, r.Raw)
		}
		wg.Wait()
		if waited.Status != http.StatusOK || !bytes.Equal(waited.Raw, data) {
			t.Fatalf("the waiting download: %d %q", waited.Status, waited.Raw)
		}
		r = put(alice.AccessToken)
		testserver.WantError(t, "a second upload", r.Status, r.JSON, http.StatusConflict, "M_CANNOT_OVERWRITE_MEDIA")
		r = testserver.Send(t, nil, http.MethodPut, s.URL+"/_matrix/media/v3/upload/hs1.test/neverCreated", alice.AccessToken, data, "Content-Type", "text/plain")
		testserver.WantError(t, "an upload to an unknown URI", r.Status, r.JSON, http.StatusNotFound, "M_NOT_FOUND")

		// Synapse's max_pending_media_uploads (5).
		for i := range 5 {
			if st, body := s.Do(t, http.MethodPost, "/_matrix/media/v1/create", alice.AccessToken, nil); st != http.StatusOK {
				t.Fatalf("create %d: %d %v", i, st, body)
			}
		}
		st, body = s.Do(t, http.MethodPost, "/_matrix/media/v1/create", alice.AccessToken, nil)
		testserver.WantError(t, "a sixth pending URI", st, body, http.StatusTooManyRequests, "M_LIMIT_EXCEEDED")
	})
}

// TestThumbnails: the configured size at least as large as asked is
// served, other sizes are made and kept, scale keeps the aspect, crop
// fills the box, small images come back as they are, and a PNG header
// declaring a giant canvas is refused without being decoded.
func TestThumbnails(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		pngURI := upload(t, s, alice.AccessToken, "image/png", "wide.png", pngBytes(t, 1000, 500))
		jpegURI := upload(t, s, alice.AccessToken, "image/jpeg", "square.jpg", jpegBytes(t, 600, 600))
		smallURI := upload(t, s, alice.AccessToken, "image/png", "small.png", pngBytes(t, 20, 10))
		tests := []struct {
			name, uri, query string
			format           string
			w, h             int
		}{
			{"scale picks 320x240", pngURI, "width=100&height=100&method=scale", "png", 320, 160},
			{"crop picks 96x96", pngURI, "width=50&height=60&method=crop", "png", 96, 96},
			{"default method is scale", pngURI, "width=600&height=450", "png", 640, 320},
			{"scale beyond the configured sizes", pngURI, "width=900&height=400&method=scale", "png", 800, 400},
			{"crop of another size", jpegURI, "width=200&height=100&method=crop", "jpeg", 200, 100},
			{"jpeg scale fits the box", jpegURI, "width=300&height=200&method=scale", "jpeg", 240, 240},
			{"no upscaling", smallURI, "width=96&height=96&method=crop", "png", 20, 10},
		}
		for _, tt := range tests {
			for round := range 2 { // the second answer comes from the kept thumbnail
				r := get(t, s, alice.AccessToken, "/_matrix/client/v1/media/thumbnail/"+mediaPath(tt.uri)+"?"+tt.query)
				if r.Status != http.StatusOK {
					t.Fatalf("%s (%d): %d %s", tt.name, round, r.Status, r.Raw)
				}
				format, w, h := dims(t, tt.name, r.Raw)
				if format != tt.format || w != tt.w || h != tt.h {
					t.Fatalf("%s (%d): %s %dx%d, want %s %dx%d", tt.name, round, format, w, h, tt.format, tt.w, tt.h)
				}
				if d := r.Header.Get("Content-Disposition"); !strings.HasPrefix(d, "inline") {
					t.Fatalf("%s: Content-Disposition %q", tt.name, d)
				}
				if ct := r.Header.Get("Content-Type"); ct != "image/"+tt.format {
					t.Fatalf("%s: Content-Type %q", tt.name, ct)
				}
			}
		}
		r := get(t, s, alice.AccessToken, "/_matrix/client/v1/media/thumbnail/"+mediaPath(pngURI)+"?width=0&height=10")
		testserver.WantError(t, "width 0", r.Status, r.JSON, http.StatusBadRequest, "M_INVALID_PARAM")
		r = get(t, s, alice.AccessToken, "/_matrix/client/v1/media/thumbnail/"+mediaPath(pngURI)+"?width=10&height=10&method=stretch")
		testserver.WantError(t, "an unknown method", r.Status, r.JSON, http.StatusBadRequest, "M_INVALID_PARAM")
		text := upload(t, s, alice.AccessToken, "text/plain", "", []byte("not an image"))
		r = get(t, s, alice.AccessToken, "/_matrix/client/v1/media/thumbnail/"+mediaPath(text)+"?width=10&height=10")
		testserver.WantStatus(t, "a thumbnail of text", r.Status, r.JSON, http.StatusBadRequest)

		bomb := upload(t, s, alice.AccessToken, "image/png", "bomb.png", pngHeader(100000, 100000))
		r = get(t, s, alice.AccessToken, "/_matrix/client/v1/media/thumbnail/"+mediaPath(bomb)+"?width=32&height=32&method=crop")
		testserver.WantError(t, "a decompression bomb", r.Status, r.JSON, http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	})
}

// pngHeader is a PNG that declares a w x h canvas and holds no pixels:
// a decoder that trusted it would allocate w*h*4 bytes.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		b.WriteString(typ)
		b.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

// TestLegacyEndpoints: the unauthenticated endpoints serve media stored
// before the freeze (a cutoff recorded at first start) and refuse newer
// media with 404; with enable_authenticated_media off they serve all.
func TestLegacyEndpoints(t *testing.T) {
	for _, engine := range testdb.Engines() {
		t.Run(engine, func(t *testing.T) {
			frozen := testserver.Start(t, testdb.NewURL(t, engine), nil)
			alice := frozen.Register("alice", "pw-alice")
			uri := upload(t, frozen, alice.AccessToken, "image/png", "a.png", pngBytes(t, 100, 100))
			r := get(t, frozen, "", "/_matrix/media/v3/download/"+mediaPath(uri))
			testserver.WantError(t, "new media on the legacy endpoint", r.Status, r.JSON, http.StatusNotFound, "M_NOT_FOUND")
			r = get(t, frozen, "", "/_matrix/media/v3/thumbnail/"+mediaPath(uri)+"?width=32&height=32&method=crop")
			testserver.WantError(t, "a thumbnail of new media on the legacy endpoint", r.Status, r.JSON, http.StatusNotFound, "M_NOT_FOUND")
			if r = get(t, frozen, alice.AccessToken, "/_matrix/client/v1/media/download/"+mediaPath(uri)); r.Status != http.StatusOK {
				t.Fatalf("authenticated download: %d", r.Status)
			}

			// A server whose cutoff lies ahead: all its media predates the freeze.
			url := testdb.NewURL(t, engine)
			db, err := store.Open(context.Background(), url, 2)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.MediaSetting(context.Background(), "legacy_cutoff_ts", 1<<62); err != nil {
				t.Fatal(err)
			}
			db.Close()
			old := testserver.Start(t, url, nil)
			bob := old.Register("bob", "pw-bob")
			uri = upload(t, old, bob.AccessToken, "image/png", "b.png", pngBytes(t, 100, 100))
			if r = get(t, old, "", "/_matrix/media/v3/download/"+mediaPath(uri)); r.Status != http.StatusOK {
				t.Fatalf("media older than the freeze on the legacy endpoint: %d %s", r.Status, r.Raw)
			}
			// Configured sizes are made at upload, others when asked:
			// both belong to media older than the freeze.
			for _, q := range []string{"width=32&height=32&method=crop", "width=100&height=50&method=crop"} {
				for range 2 {
					if r = get(t, old, "", "/_matrix/media/r0/thumbnail/"+mediaPath(uri)+"?"+q); r.Status != http.StatusOK {
						t.Fatalf("legacy thumbnail %s: %d %s", q, r.Status, r.Raw)
					}
				}
			}

			open := testserver.Start(t, testdb.NewURL(t, engine), func(c *config.Config) { c.Media.EnableAuthenticatedMedia = false })
			carol := open.Register("carol", "pw-carol")
			uri = upload(t, open, carol.AccessToken, "text/plain", "", []byte("open"))
			if r = get(t, open, "", "/_matrix/media/v3/download/"+mediaPath(uri)); r.Status != http.StatusOK || string(r.Raw) != "open" {
				t.Fatalf("legacy download without the freeze: %d %s", r.Status, r.Raw)
			}
		})
	}
}

// TestSafeServing: an HTML upload is served as an attachment under a
// sandboxing CSP with nosniff, never inline; SVG too; file names are
// encoded per RFC 6266.
func TestSafeServing(t *testing.T) {
	testserver.EachEngine(t, nil, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		html := upload(t, s, alice.AccessToken, "text/html", "evil%20page.html", []byte("<script>alert(1)</script>"))
		svg := upload(t, s, alice.AccessToken, "image/svg+xml", "x.svg", []byte("<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"))
		img := upload(t, s, alice.AccessToken, "image/png", "ok.png", pngBytes(t, 10, 10))
		tests := []struct {
			uri, contentType, disposition string
		}{
			{html, "text/html; charset=UTF-8", "attachment; filename*=utf-8''evil%20page.html"},
			{svg, "image/svg+xml; charset=UTF-8", "attachment; filename=x.svg"},
			{img, "image/png", "inline; filename=ok.png"},
		}
		for _, tt := range tests {
			r := get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/"+mediaPath(tt.uri))
			h := r.Header
			if r.Status != http.StatusOK || h.Get("Content-Type") != tt.contentType || h.Get("Content-Disposition") != tt.disposition {
				t.Fatalf("%s: %d Content-Type %q Content-Disposition %q", tt.uri, r.Status, h.Get("Content-Type"), h.Get("Content-Disposition"))
			}
			if csp := h.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "sandbox; default-src 'none'; script-src 'none';") {
				t.Fatalf("%s: Content-Security-Policy %q", tt.uri, csp)
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Cross-Origin-Resource-Policy") != "cross-origin" {
				t.Fatalf("%s: headers %v", tt.uri, h)
			}
		}
	})
}
