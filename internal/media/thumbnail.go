package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // registers GIF with image.Decode
	"image/jpeg"
	"image/png"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // registers WebP with image.Decode

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// thumbnailable are the types thumbnails are made of (Synapse's
// default, less the ones no Go decoder here reads).
var thumbnailable = map[string]bool{"image/jpeg": true, "image/jpg": true, "image/png": true, "image/gif": true, "image/webp": true}

func canThumbnail(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return thumbnailable[strings.ToLower(strings.TrimSpace(mt))]
}

// ThumbnailSpec is a client's thumbnail request.
type ThumbnailSpec struct {
	Width, Height int
	// Method is "crop" or "scale".
	Method string
}

// ThumbnailSpecFromQuery reads a thumbnail request's width, height and
// method (scale by default, as Synapse), of the client or the federation
// API. animated is accepted and ignored: thumbnails are still images,
// which the spec allows.
func ThumbnailSpecFromQuery(q url.Values) (ThumbnailSpec, error) {
	w, errW := strconv.Atoi(q.Get("width"))
	h, errH := strconv.Atoi(q.Get("height"))
	if q.Get("width") == "" || q.Get("height") == "" {
		return ThumbnailSpec{}, mxerr.MissingParam("width and height are required")
	}
	if errW != nil || errH != nil {
		return ThumbnailSpec{}, mxerr.InvalidParam("width and height must be integers")
	}
	method := q.Get("method")
	if method == "" {
		method = "scale"
	}
	return ThumbnailSpec{Width: w, Height: h, Method: method}, nil
}

// target picks the size a thumbnail is made for: the smallest configured
// size of the method at least as large as asked (Synapse's choice among
// its pre-generated thumbnails), else exactly the size asked.
func (s *Service) target(t ThumbnailSpec) ThumbnailSpec {
	best := t
	found := false
	for _, c := range s.cfg.ThumbnailSizes {
		if c.Method != t.Method || c.Width < t.Width || c.Height < t.Height {
			continue
		}
		if !found || c.Width*c.Height < best.Width*best.Height {
			best, found = ThumbnailSpec{c.Width, c.Height, c.Method}, true
		}
	}
	return best
}

// Thumbnail serves a thumbnail of mxc://server/mediaID, made (and kept)
// when first asked for. A thumbnail served is an access of the media,
// as in Synapse.
func (s *Service) Thumbnail(ctx context.Context, server, mediaID string, t ThumbnailSpec, req Request) (*Content, error) {
	c, err := s.thumbnail(ctx, server, mediaID, t, req)
	if err == nil {
		s.touch(server, mediaID)
	}
	return c, err
}

func (s *Service) thumbnail(ctx context.Context, server, mediaID string, t ThumbnailSpec, req Request) (*Content, error) {
	if t.Width < 1 || t.Height < 1 {
		return nil, mxerr.InvalidParam("width and height must be positive integers")
	}
	if t.Method != "crop" && t.Method != "scale" {
		return nil, mxerr.InvalidParam("method must be crop or scale")
	}
	m, err := s.record(ctx, server, mediaID, req.QuarantineBypassedBy)
	cached := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	t = s.target(t)
	if th, err := s.db.GetThumbnail(ctx, server, mediaID, t.Width, t.Height, t.Method); err == nil {
		if s.thumbnailFrozen(req, th, m, cached) {
			return nil, mxerr.NotFound("Not found")
		}
		return s.openThumbnail(ctx, th)
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if server != s.serverName && !cached {
		if c, err := s.remoteThumbnail(ctx, server, mediaID, t, req); c != nil || err != nil {
			return c, err
		}
	}
	m, err = s.lookup(ctx, server, mediaID, req)
	if err != nil {
		return nil, err
	}
	return s.makeThumbnail(ctx, m, t)
}

// thumbnailFrozen applies the legacy freeze to a kept thumbnail by the
// age of its media (a thumbnail made later of older media is served);
// a remote thumbnail kept without its original goes by its own age.
func (s *Service) thumbnailFrozen(req Request, th store.Thumbnail, m store.Media, cached bool) bool {
	if !req.Legacy {
		return false
	}
	ts := th.CreatedTS
	if cached {
		ts = m.CreatedTS
	}
	return s.frozen(req, ts)
}

func (s *Service) openThumbnail(ctx context.Context, th store.Thumbnail) (*Content, error) {
	body, err := s.open(ctx, th.SHA256)
	if err != nil {
		return nil, err
	}
	return &Content{ContentType: th.ContentType, Filename: "thumbnail" + extension(th.ContentType), Size: th.Size, Body: body, Thumbnail: true}, nil
}

func extension(contentType string) string {
	if contentType == "image/jpeg" {
		return ".jpg"
	}
	return ".png"
}

// remoteThumbnail asks another server for a thumbnail when its original
// is not cached here, keeping it by the size asked. It answers nil, nil
// to fall back to fetching the original (the server cannot thumbnail).
func (s *Service) remoteThumbnail(ctx context.Context, server, mediaID string, t ThumbnailSpec, req Request) (*Content, error) {
	if s.remote == nil || req.LocalOnly || s.frozen(req, s.now().UnixMilli()) {
		return nil, nil
	}
	q := url.Values{"width": {strconv.Itoa(t.Width)}, "height": {strconv.Itoa(t.Height)}, "method": {t.Method}}
	path := "/_matrix/federation/v1/media/thumbnail/" + url.PathEscape(mediaID) + "?" + q.Encode() + "&" + waitQuery(req.Timeout)
	part, err := s.askRemote(ctx, server, path)
	if err != nil {
		if e, ok := mxerr.As(err); ok && (e.Code == "M_NOT_FOUND" || e.Code == "M_NOT_YET_UPLOADED") {
			return nil, err
		}
		return nil, nil
	}
	defer part.body.Close()
	st, err := s.stage(part.body, s.cfg.MaxRemoteBytes, remoteTooLarge())
	if err != nil {
		return nil, err
	}
	defer st.remove()
	if err := s.keep(ctx, st); err != nil {
		return nil, err
	}
	th := store.Thumbnail{Origin: server, MediaID: mediaID, ReqWidth: t.Width, ReqHeight: t.Height, Method: t.Method,
		ContentType: part.contentType, Size: st.size, SHA256: st.hash, CreatedTS: s.now().UnixMilli()}
	if cfg, _, err := imageConfigOf(st.path); err == nil {
		th.Width, th.Height = cfg.Width, cfg.Height
	}
	if err := s.db.PutThumbnail(ctx, th); err != nil {
		return nil, err
	}
	return s.openThumbnail(ctx, th)
}

func imageConfigOf(path string) (image.Config, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return image.Config{}, "", err
	}
	defer f.Close()
	return image.DecodeConfig(f)
}

// makeThumbnail thumbnails local (or cached) media for size t. Media
// already no larger than asked is served as it is: the spec forbids
// upscaling and prefers the original then.
func (s *Service) makeThumbnail(ctx context.Context, m store.Media, t ThumbnailSpec) (*Content, error) {
	if !canThumbnail(m.ContentType) {
		return nil, mxerr.Unknown("Cannot generate thumbnails for the requested content").WithStatus(400)
	}
	src, err := s.open(ctx, m.SHA256)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(src)
	src.Close()
	if err != nil {
		return nil, err
	}
	th, data, err := s.render(m, raw, t)
	if err != nil {
		return nil, err
	}
	if data == nil {
		return &Content{ContentType: m.ContentType, Filename: m.Filename, Size: m.Size, Body: io.NopCloser(bytes.NewReader(raw)), Thumbnail: true}, nil
	}
	if err := s.storage.Put(ctx, th.SHA256, bytes.NewReader(data)); err != nil {
		return nil, err
	}
	if err := s.db.PutThumbnail(ctx, th); err != nil {
		return nil, err
	}
	return &Content{ContentType: th.ContentType, Filename: "thumbnail" + extension(th.ContentType), Size: th.Size,
		Body: io.NopCloser(bytes.NewReader(data)), Thumbnail: true}, nil
}

// render makes the thumbnail bytes of raw for t; nil data means the
// original is small enough to serve instead.
func (s *Service) render(m store.Media, raw []byte, t ThumbnailSpec) (store.Thumbnail, []byte, error) {
	img, format, err := s.decode(raw)
	if err != nil {
		return store.Thumbnail{}, nil, err
	}
	return s.encode(m, img, format, t)
}

// decode reads an image, refusing decompression bombs: a small file may
// declare a huge canvas, which decoding allocates whole, so the header
// is read first.
func (s *Service) decode(raw []byte) (image.Image, string, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return nil, "", mxerr.Unknown("Cannot decode the image: %v", err).WithStatus(400)
	}
	if int64(cfg.Width)*int64(cfg.Height) > s.cfg.MaxImagePixels {
		return nil, "", mxerr.TooLarge("Image is too large to thumbnail (%dx%d)", cfg.Width, cfg.Height)
	}
	img, format, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, "", mxerr.Unknown("Cannot decode the image: %v", err).WithStatus(400)
	}
	return img, format, nil
}

// encode makes the thumbnail of img for t; nil data when the image is
// no larger than t already.
func (s *Service) encode(m store.Media, img image.Image, format string, t ThumbnailSpec) (store.Thumbnail, []byte, error) {
	if b := img.Bounds(); b.Dx() <= t.Width && b.Dy() <= t.Height {
		return store.Thumbnail{}, nil, nil
	}
	out := resize(img, t)
	var buf bytes.Buffer
	var err error
	// JPEG stays JPEG (photos); everything else becomes PNG, which keeps
	// transparency (Synapse does the same).
	contentType := "image/png"
	if format == "jpeg" {
		contentType = "image/jpeg"
		err = jpeg.Encode(&buf, out, &jpeg.Options{Quality: 80})
	} else {
		err = png.Encode(&buf, out)
	}
	if err != nil {
		return store.Thumbnail{}, nil, fmt.Errorf("media: encoding thumbnail: %w", err)
	}
	data := buf.Bytes()
	b := out.Bounds()
	return store.Thumbnail{Origin: m.Origin, MediaID: m.MediaID, ReqWidth: t.Width, ReqHeight: t.Height, Method: t.Method,
		Width: b.Dx(), Height: b.Dy(), ContentType: contentType, Size: int64(len(data)), SHA256: hashOf(data),
		CreatedTS: s.now().UnixMilli()}, data, nil
}

// resize never upscales: scale fits the image within the box keeping its
// aspect; crop cuts the middle to the box's aspect and fills the box, or
// the largest box of that aspect the image holds.
func resize(img image.Image, t ThumbnailSpec) image.Image {
	srcRect, outW, outH := resizeGeometry(img.Bounds(), t)
	dst := image.NewRGBA(image.Rect(0, 0, outW, outH))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, srcRect, draw.Src, nil)
	return dst
}

// resizeGeometry is the part of b a thumbnail shows and its size. The
// box is the client's (any int): products of it are taken in float64,
// where they cannot overflow into a wrong branch or a huge canvas.
func resizeGeometry(b image.Rectangle, t ThumbnailSpec) (srcRect image.Rectangle, outW, outH int) {
	w, h := b.Dx(), b.Dy()
	if t.Method != "crop" {
		outW, outH = scaledSize(w, h, t.Width, t.Height)
		return b, outW, outH
	}
	cw, ch := w, h
	if float64(w)*float64(t.Height) > float64(h)*float64(t.Width) { // wider than the box: cut the sides
		cw = max(1, min(w, int(float64(h)*float64(t.Width)/float64(t.Height))))
	} else {
		ch = max(1, min(h, int(float64(w)*float64(t.Height)/float64(t.Width))))
	}
	x0, y0 := b.Min.X+(w-cw)/2, b.Min.Y+(h-ch)/2
	srcRect = image.Rect(x0, y0, x0+cw, y0+ch)
	outW, outH = min(t.Width, cw), min(t.Height, ch)
	if cw < t.Width || ch < t.Height {
		outW, outH = cw, ch
	}
	return srcRect, outW, outH
}

// scaledSize fits w x h within maxW x maxH, keeping the aspect. The box
// is first cut to the image, which changes no answer (nothing is
// upscaled) and keeps the products within the image's size.
func scaledSize(w, h, maxW, maxH int) (int, int) {
	if w <= maxW && h <= maxH {
		return w, h
	}
	maxW, maxH = min(maxW, w), min(maxH, h)
	if w*maxH > h*maxW {
		return maxW, max(1, h*maxW/w)
	}
	return max(1, w*maxH/h), maxH
}

// pregenerate makes the configured thumbnails of a new image, as Synapse
// does on upload, so that the common sizes are served at once. Failures
// only cost the work later: the sizes are made again when asked for.
func (s *Service) pregenerate(ctx context.Context, m store.Media, path string) {
	if !canThumbnail(m.ContentType) || len(s.cfg.ThumbnailSizes) == 0 {
		return
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return
	}
	img, format, err := s.decode(raw)
	if err != nil {
		s.log.Debug("not thumbnailing", "media_id", m.MediaID, "err", err)
		return
	}
	for _, size := range s.cfg.ThumbnailSizes {
		th, data, err := s.encode(m, img, format, ThumbnailSpec{size.Width, size.Height, size.Method})
		if err != nil {
			s.log.Warn("thumbnailing", "media_id", m.MediaID, "err", err)
			return
		}
		if data == nil {
			continue
		}
		if err := s.storage.Put(ctx, th.SHA256, bytes.NewReader(data)); err != nil {
			s.log.Warn("storing thumbnail", "media_id", m.MediaID, "err", err)
			return
		}
		if err := s.db.PutThumbnail(ctx, th); err != nil {
			s.log.Warn("recording thumbnail", "media_id", m.MediaID, "err", err)
			return
		}
	}
}
