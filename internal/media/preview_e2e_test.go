package media_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
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
		// Only the previews' own allow list lets 127.0.0.1 through.
		c.Outbound.Allow = nil
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
// link-local addresses, zoned IPv6 addresses (which no prefix contains),
// the IPv6 forms wrapping IPv4, and names resolving to them, are refused
// by default (no outbound.allow), and the answer says nothing of the
// address or the port.
func TestURLPreviewRefusesPrivateAddresses(t *testing.T) {
	page := site(t, pngBytes(t, 10, 10))
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(page.URL, "http://"))
	s := testserver.Start(t, testdbURL(t), func(c *config.Config) {
		c.Media.URLPreview.Enabled = true
		c.Outbound.Allow = nil
	})
	alice := s.Register("alice", "pw-alice")
	for _, u := range []string{
		page.URL + "/article", "http://localhost:" + port + "/article", "http://[::1]:" + port + "/",
		"http://[::1%25x]:" + port + "/", "http://[::1%25lo]:" + port + "/", "http://[fe80::1%25eth0]:" + port + "/",
		"http://10.1.2.3/", "http://169.254.169.254/latest/meta-data/", "http://100.64.0.1/", "http://[fd00::1]/",
		"http://0.0.0.0:" + port + "/", "http://[::ffff:127.0.0.1]:" + port + "/", "http://[::ffff:0:7f00:1]:" + port + "/",
		"http://[64:ff9b::7f00:1]:" + port + "/", "http://[2002:7f00:1::1]:" + port + "/",
	} {
		r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v1/media/preview_url?url="+url.QueryEscape(u), alice.AccessToken, nil)
		testserver.WantError(t, "preview of "+u, r.Status, r.JSON, http.StatusForbidden, "M_FORBIDDEN")
		if strings.Contains(string(r.Raw), port) || strings.Contains(string(r.Raw), "127.0.0.1") {
			t.Errorf("preview of %s: the answer shows dial details: %s", u, r.Raw)
		}
	}
}

// TestURLPreviewRedirectToLoopback: a public-looking start is no way in:
// a redirect to a refused address is refused (the allow list admits
// 127.0.0.1 only, the redirect goes to 127.0.0.2).
func TestURLPreviewRedirectToLoopback(t *testing.T) {
	page := site(t, pngBytes(t, 10, 10))
	s := testserver.Start(t, testdbURL(t), func(c *config.Config) {
		c.Media.URLPreview.Enabled = true
		c.Outbound.Allow = []string{"127.0.0.1/32"}
	})
	alice := s.Register("alice", "pw-alice")
	st, body := s.Do(t, http.MethodGet, "/_matrix/client/v1/media/preview_url?url="+page.URL+"/article", alice.AccessToken, nil)
	testserver.WantStatus(t, "preview of an allowed address", st, body, http.StatusOK)
	st, body = s.Do(t, http.MethodGet, "/_matrix/client/v1/media/preview_url?url="+page.URL+"/elsewhere", alice.AccessToken, nil)
	testserver.WantError(t, "a redirect to 127.0.0.2", st, body, http.StatusForbidden, "M_FORBIDDEN")
}

// TestURLPreviewHidesDialErrors: with loopback allowed, a closed port
// and a port that accepts and hangs up answer the same generic 502: the
// body tells neither apart and names no address.
func TestURLPreviewHidesDialErrors(t *testing.T) {
	s := testserver.Start(t, testdbURL(t), func(c *config.Config) { c.Media.URLPreview.Enabled = true })
	alice := s.Register("alice", "pw-alice")
	closed := testserver.ClosedAddr(t)
	open := testserver.NewTrap(t).Addr
	var bodies []string
	for _, addr := range []string{closed, open} {
		r := testserver.Send(t, nil, http.MethodGet, s.URL+"/_matrix/client/v1/media/preview_url?url="+url.QueryEscape("http://"+addr+"/x"), alice.AccessToken, nil)
		testserver.WantError(t, "preview of "+addr, r.Status, r.JSON, http.StatusBadGateway, "M_UNKNOWN")
		_, port, _ := net.SplitHostPort(addr)
		if strings.Contains(string(r.Raw), port) || strings.Contains(string(r.Raw), "127.0.0.1") || strings.Contains(string(r.Raw), "refused") {
			t.Errorf("preview of %s: the answer shows dial details: %s", addr, r.Raw)
		}
		bodies = append(bodies, string(r.Raw))
	}
	if bodies[0] != bodies[1] {
		t.Errorf("a closed and an open port answer differently:\n%s\n%s", bodies[0], bodies[1])
	}
}
