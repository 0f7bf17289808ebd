package media

import (
	"image"
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
)

var mediaIDGrammar = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// FuzzCheckRef: the server name and media ID of /download, /thumbnail
// and federation media paths. What passes is a valid server name and a
// media ID of the spec's alphabet only, so the mxc URI built from them
// names that media and nothing else (no "/", "..", "?", "#", NUL).
func FuzzCheckRef(f *testing.F) {
	for _, s := range [][2]string{{"example.org", "abcDEF123_-"}, {"[::1]:8448", "x"}, {"example.org", "../../etc/passwd"},
		{"example.org", "a/b"}, {"example.org", "a\x00"}, {"example.org", "é"}, {"example.org", ""},
		{"example.org", strings.Repeat("a", 256)}, {"a/b", "x"}, {"", "x"}, {"example.org:+1", "x"}, {"\xff", "\xff"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, server, id string) {
		if checkRef(server, id) != nil {
			return
		}
		if !mediaIDGrammar.MatchString(id) {
			t.Fatalf("media ID %q accepted", id)
		}
		if err := config.ValidateServerName(server); err != nil {
			t.Fatalf("server name %q accepted: %v", server, err)
		}
		uri := MXC(server, id)
		rest, _ := strings.CutPrefix(uri, "mxc://")
		if strings.Count(rest, "/") != 1 || strings.ContainsAny(rest, "?#\x00 ") || strings.Contains(rest, "..") && strings.Contains(id, "..") {
			t.Fatalf("%q makes the URI %q", server+" "+id, uri)
		}
	})
}

// FuzzParseOpenGraphProperties: previewed pages are any server's HTML.
// Whatever the page, the answer holds only og:* keys with string values,
// no more text than the page had (charset decoding may widen a byte to a
// three-byte rune).
func FuzzParseOpenGraphProperties(f *testing.F) {
	for _, s := range []string{
		`<html><head><title>t</title><meta property="og:title" content="x"></head></html>`,
		`<title>  padded  </title><meta name="Description" content="d"><meta property="og:image" content="http://x/y.png">`,
		`<meta charset="windows-1252"><title>` + "\x80\x81\xff" + `</title>`,
		`<meta property="og:title" content="a` + "\x00" + `b"><title>ignored</title>`,
		`<title><title><title></title>`, `<TITLE>x</TITLE><META PROPERTY="og:x" CONTENT="y">`,
		`<svg><title>in svg</title></svg>`, `<title>&amp;&lt;&NotNestedGreaterGreater;&#0;&#x110000;</title>`,
		strings.Repeat("<div>", 10000), `<meta property="og:`, "\xef\xbb\xbf<title>bom</title>",
	} {
		f.Add([]byte(s), "text/html")
		f.Add([]byte(s), "text/html; charset=iso-8859-1")
	}
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		og := parseOpenGraph(body, contentType)
		total := 0
		for k, v := range og {
			s, ok := v.(string)
			if !ok || !strings.HasPrefix(k, "og:") {
				t.Fatalf("key %q = %#v", k, v)
			}
			total += len(k) + len(s)
		}
		if total > 3*len(body)+16 {
			t.Fatalf("%d bytes of HTML gave %d bytes of preview", len(body), total)
		}
	})
}

// FuzzThumbnailGeometry: width and height of /thumbnail are the
// client's, any positive int. The thumbnail of an image is never larger
// than the image nor than the box asked for, and shows a part of the
// image.
func FuzzThumbnailGeometry(f *testing.F) {
	for _, s := range []struct {
		w, h, tw, th int
		crop         bool
	}{{640, 480, 96, 96, false}, {640, 480, 96, 96, true}, {1000, 1000, 10, 1 << 62, false}, {1000, 1000, 10, 1 << 62, true},
		{1000, 10, math.MaxInt, 3, true}, {3, 1000, 2, math.MaxInt, true}, {1, 1, 1, 1, true}, {5000, 7, 4999, 6, false}} {
		f.Add(s.w, s.h, s.tw, s.th, s.crop)
	}
	f.Fuzz(func(t *testing.T, w, h, tw, th int, crop bool) {
		if w < 1 || h < 1 || w > 1<<16 || h > 1<<16 || tw < 1 || th < 1 || w <= tw && h <= th {
			return // refused by Thumbnail, or served as it is (encode)
		}
		spec := ThumbnailSpec{Width: tw, Height: th, Method: "scale"}
		if crop {
			spec.Method = "crop"
		}
		b := image.Rect(0, 0, w, h)
		src, ow, oh := resizeGeometry(b, spec)
		if ow < 1 || oh < 1 || ow > w || oh > h || ow > tw || oh > th || !src.In(b) || src.Empty() {
			t.Fatalf("%dx%d image, %dx%d %s: source %v, thumbnail %dx%d", w, h, tw, th, spec.Method, src, ow, oh)
		}
	})
}
