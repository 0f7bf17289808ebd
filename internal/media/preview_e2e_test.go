package media_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// site serves the pages the preview tests fetch, on 127.0.0.1.
func site(t *testing.T, image []byte) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/article", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html><head><title>Fallback title</title>
			<meta property="og:title" content="Myelin ships media">
			<meta property="og:description" content="Uploads, thumbnails and previews">
			<meta property="og:image" content="/cover.png">
			</head><body>hi</body></html>`)
	})
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<html><head><title> Just a title </title><meta name="description" content="A description"></head></html>`)
	})
	mux.HandleFunc("/cover.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(image)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>" + strings.Repeat("x", 2<<20)))
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		// 127.0.0.2 is loopback too, but off the allow-list.
		_, port, _ := net.SplitHostPort(r.Host)
		http.Redirect(w, r, "http://127.0.0.2:"+port+"/article", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestURLPreview: a page's OpenGraph data, its og:image stored as local
// media and described; the <title> and description fallbacks; the size
// limit; and previews off by default.
func TestURLPreview(t *testing.T) {
	cover := pngBytes(t, 120, 60)
	page := site(t, cover)
	testserver.EachEngine(t, func(c *config.Config) {
		c.Media.URLPreview.Enabled = true
		c.Media.URLPreview.MaxBytes = 1 << 20
		c.Media.URLPreview.IPRangeWhitelist = []string{"127.0.0.1/32"}
	}, func(t *testing.T, s *testserver.Server) {
		alice := s.Register("alice", "pw-alice")
		preview := func(u string) (int, map[string]any) {
			return s.Do(t, http.MethodGet, "/_matrix/client/v1/media/preview_url?url="+u, alice.AccessToken, nil)
		}
		st, og := preview(page.URL + "/article")
		if st != http.StatusOK || og["og:title"] != "Myelin ships media" || og["og:description"] != "Uploads, thumbnails and previews" {
			t.Fatalf("preview: %d %v", st, og)
		}
		img, _ := og["og:image"].(string)
		if !strings.HasPrefix(img, "mxc://hs1.test/") || og["og:image:width"] != float64(120) || og["og:image:height"] != float64(60) ||
			og["og:image:type"] != "image/png" || og["matrix:image:size"] != float64(len(cover)) {
			t.Fatalf("preview image: %v", og)
		}
		r := get(t, s, alice.AccessToken, "/_matrix/client/v1/media/download/"+mediaPath(img))
		if r.Status != http.StatusOK || len(r.Raw) != len(cover) {
			t.Fatalf("the preview's image: %d", r.Status)
		}
		st, og = preview(page.URL + "/plain")
		if st != http.StatusOK || og["og:title"] != "Just a title" || og["og:description"] != "A description" {
			t.Fatalf("fallback preview: %d %v", st, og)
		}
		st, og = preview(page.URL + "/big")
		testserver.WantStatus(t, "a page over the size limit", st, og, http.StatusBadGateway)
		st, og = preview("ftp://127.0.0.1/file")
		testserver.WantError(t, "an ftp URL", st, og, http.StatusBadRequest, "M_INVALID_PARAM")
		st, og = preview(page.URL + "/elsewhere")
		testserver.WantError(t, "a redirect to an address off the allow-list", st, og, http.StatusForbidden, "M_FORBIDDEN")
	})
	off := testserver.Start(t, testdbURL(t), nil)
	bob := off.Register("bob", "pw-bob")
	st, body := off.Do(t, http.MethodGet, "/_matrix/client/v1/media/preview_url?url="+page.URL+"/article", bob.AccessToken, nil)
	testserver.WantError(t, "previews off by default", st, body, http.StatusNotFound, "M_UNRECOGNIZED")
}

// TestURLPreviewRefusesPrivateAddresses: loopback, private and
// link-local addresses, and names resolving to them, are refused unless
// allow-listed.
func TestURLPreviewRefusesPrivateAddresses(t *testing.T) {
	page := site(t, pngBytes(t, 10, 10))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(page.URL, "http://"))
	s := testserver.Start(t, testdbURL(t), func(c *config.Config) { c.Media.URLPreview.Enabled = true })
	alice := s.Register("alice", "pw-alice")
	for _, u := range []string{
		page.URL + "/article", "http://localhost:" + port + "/article", "http://[::1]:" + port + "/",
		"http://10.1.2.3/", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://[fd00::1]/",
		"http://0.0.0.0:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/",
	} {
		st, body := s.Do(t, http.MethodGet, "/_matrix/client/v1/media/preview_url?url="+u, alice.AccessToken, nil)
		testserver.WantError(t, "preview of "+u, st, body, http.StatusForbidden, "M_FORBIDDEN")
	}
}
