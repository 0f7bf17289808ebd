package media_test

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// upload posts bytes to /_matrix/media/v3/upload and returns the mxc URI.
func upload(t *testing.T, s *testserver.Server, token, contentType, filename string, data []byte) string {
	t.Helper()
	path := s.URL + "/_matrix/media/v3/upload"
	if filename != "" {
		path += "?filename=" + filename
	}
	r := testserver.Send(t, nil, http.MethodPost, path, token, data, "Content-Type", contentType)
	if r.Status != http.StatusOK {
		t.Fatalf("upload: %d %s", r.Status, r.Raw)
	}
	uri, _ := r.JSON["content_uri"].(string)
	if !strings.HasPrefix(uri, "mxc://"+s.Config.ServerName+"/") {
		t.Fatalf("upload: content_uri %q", uri)
	}
	return uri
}

// mediaPath turns mxc://server/id into server/id.
func mediaPath(uri string) string { return strings.TrimPrefix(uri, "mxc://") }

func get(t *testing.T, s *testserver.Server, token, path string) testserver.Response {
	t.Helper()
	return testserver.Send(t, nil, http.MethodGet, s.URL+path, token, nil)
}

// mediaFiles lists the stored files under a server's media directory.
func mediaFiles(t *testing.T, s *testserver.Server) []string {
	t.Helper()
	var out []string
	root := filepath.Join(s.Config.DataDir, "media")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "tmp" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			out = append(out, path)
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

// gradient is a w x h image that compresses poorly enough to be a real
// picture and well enough to stay small.
func gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	return img
}

func pngBytes(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, gradient(w, h)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func jpegBytes(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, gradient(w, h), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dims decodes an image answer and returns its format and size.
func dims(t *testing.T, what string, raw []byte) (string, int, int) {
	t.Helper()
	cfg, format, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("%s: not an image: %v", what, err)
	}
	return format, cfg.Width, cfg.Height
}

// testdbURL is a fresh database on the first engine under test.
func testdbURL(t *testing.T) string {
	t.Helper()
	return testdb.NewURL(t, testdb.Engines()[0])
}
