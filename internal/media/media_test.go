package media

import (
	"bytes"
	"context"
	"errors"
	"image"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/config"
)

func TestResize(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 1000, 500))
	for _, tt := range []struct {
		spec ThumbnailSpec
		w, h int
	}{
		{ThumbnailSpec{320, 240, "scale"}, 320, 160},
		{ThumbnailSpec{100, 400, "scale"}, 100, 50},
		{ThumbnailSpec{96, 96, "crop"}, 96, 96},
		{ThumbnailSpec{200, 50, "crop"}, 200, 50},
		// The box is larger than the image can fill: the largest box of
		// its aspect the image holds, never upscaled.
		{ThumbnailSpec{800, 800, "crop"}, 500, 500},
	} {
		b := resize(img, tt.spec).Bounds()
		if b.Dx() != tt.w || b.Dy() != tt.h {
			t.Errorf("%+v: %dx%d, want %dx%d", tt.spec, b.Dx(), b.Dy(), tt.w, tt.h)
		}
	}
}

func TestTarget(t *testing.T) {
	s := &Service{cfg: config.Default().Media}
	for _, tt := range []struct{ in, want ThumbnailSpec }{
		{ThumbnailSpec{10, 10, "crop"}, ThumbnailSpec{32, 32, "crop"}},
		{ThumbnailSpec{33, 20, "crop"}, ThumbnailSpec{96, 96, "crop"}},
		{ThumbnailSpec{100, 100, "crop"}, ThumbnailSpec{100, 100, "crop"}},
		{ThumbnailSpec{96, 96, "scale"}, ThumbnailSpec{320, 240, "scale"}},
		{ThumbnailSpec{700, 300, "scale"}, ThumbnailSpec{800, 600, "scale"}},
		{ThumbnailSpec{801, 600, "scale"}, ThumbnailSpec{801, 600, "scale"}},
	} {
		if got := s.target(tt.in); got != tt.want {
			t.Errorf("%+v: %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestServingHeaders(t *testing.T) {
	for _, tt := range []struct {
		c                        Content
		contentType, disposition string
	}{
		{Content{ContentType: "image/png", Filename: "a.png"}, "image/png", "inline; filename=a.png"},
		{Content{ContentType: "text/plain"}, "text/plain; charset=UTF-8", "inline"},
		{Content{ContentType: "text/plain; charset=latin1"}, "text/plain; charset=latin1", "inline"},
		{Content{ContentType: "text/html", Filename: "x.html"}, "text/html; charset=UTF-8", "attachment; filename=x.html"},
		{Content{ContentType: "application/javascript"}, "application/javascript", "attachment"},
		{Content{ContentType: "application/xhtml+xml"}, "application/xhtml+xml", "attachment"},
		{Content{ContentType: "not a type"}, "application/octet-stream", "attachment"},
		{Content{ContentType: ""}, "application/octet-stream", "attachment"},
		{Content{ContentType: "image/png", Filename: "ünïcode name.png"}, "image/png", "inline; filename*=utf-8''%C3%BCn%C3%AFcode%20name.png"},
		{Content{ContentType: "image/png", Filename: `a"b;c.png`}, "image/png", "inline; filename*=utf-8''a%22b%3Bc.png"},
		{Content{ContentType: "image/png", Thumbnail: true, Filename: "thumbnail.png"}, "image/png", "inline; filename=thumbnail.png"},
	} {
		ct, d := servingHeaders(&tt.c)
		if ct != tt.contentType || d != tt.disposition {
			t.Errorf("%+v: %q %q, want %q %q", tt.c, ct, d, tt.contentType, tt.disposition)
		}
	}
}

func TestFileStorage(t *testing.T) {
	ctx := context.Background()
	fs, err := NewFileStorage(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := hashOf([]byte("abc"))
	for range 2 {
		if err := fs.Put(ctx, h, strings.NewReader("abc")); err != nil {
			t.Fatal(err)
		}
	}
	r, err := fs.Get(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "abc" {
		t.Fatalf("got %q", got)
	}
	if err := fs.Delete(ctx, h); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Get(ctx, h); !errors.Is(err, ErrNoFile) {
		t.Fatalf("after Delete: %v", err)
	}
	if err := fs.Put(ctx, "../../etc/passwd", strings.NewReader("x")); err == nil {
		t.Fatal("a path was accepted as a hash")
	}
}

// TestMultipartRoundTrip: what WriteMultipart serves, readMultipart reads.
func TestMultipartRoundTrip(t *testing.T) {
	rec := httptest.NewRecorder()
	err := WriteMultipart(rec, &Content{ContentType: "image/png", Filename: "p.png", Body: io.NopCloser(strings.NewReader("PNGDATA"))})
	if err != nil {
		t.Fatal(err)
	}
	a, err := readMultipart(rec.Result())
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(a.body)
	if a.contentType != "image/png" || a.filename != "p.png" || string(data) != "PNGDATA" {
		t.Fatalf("read back %+v %q", a, data)
	}
}

func FuzzReadMultipart(f *testing.F) {
	f.Add("b", []byte("--b\r\nContent-Type: application/json\r\n\r\n{}\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"))
	f.Fuzz(func(t *testing.T, boundary string, body []byte) {
		resp := &http.Response{Header: http.Header{"Content-Type": {"multipart/mixed; boundary=" + boundary}}, Body: io.NopCloser(bytes.NewReader(body))}
		if a, err := readMultipart(resp); err == nil {
			_, _ = io.Copy(io.Discard, a.body)
		}
	})
}

func FuzzParseOpenGraph(f *testing.F) {
	f.Add([]byte(`<html><head><title>t</title><meta property="og:title" content="x"></head></html>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_ = parseOpenGraph(body, "text/html")
	})
}
