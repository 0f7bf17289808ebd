package media

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Other servers' media, fetched over the federation media endpoints
// (server-server spec "Content Repository", multipart/mixed answers).

// fetchRemote downloads mxc://server/mediaID into the cache, joining a
// fetch of the same media already under way.
func (s *Service) fetchRemote(ctx context.Context, server, mediaID string, timeout time.Duration) (store.Media, error) {
	if s.remote == nil {
		return store.Media{}, mxerr.NotFound("Not found")
	}
	key := server + "/" + mediaID
	s.mu.Lock()
	f, running := s.fetching[key]
	if !running {
		f = &fetch{done: make(chan struct{})}
		s.fetching[key] = f
	}
	s.mu.Unlock()
	if !running {
		f.err = s.fetchRemoteOnce(ctx, server, mediaID, timeout)
		s.mu.Lock()
		delete(s.fetching, key)
		s.mu.Unlock()
		close(f.done)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return store.Media{}, ctx.Err()
	}
	if f.err != nil {
		return store.Media{}, f.err
	}
	return s.record(ctx, server, mediaID, "")
}

func (s *Service) fetchRemoteOnce(ctx context.Context, server, mediaID string, timeout time.Duration) error {
	path := "/_matrix/federation/v1/media/download/" + url.PathEscape(mediaID) + "?" + waitQuery(timeout)
	part, err := s.askRemote(ctx, server, path)
	if errors.Is(err, errUnknownEndpoint) {
		part, err = s.askLegacy(ctx, server, mediaID, waitQuery(timeout))
	}
	if err != nil {
		return err
	}
	defer part.body.Close()
	st, err := s.stage(part.body, s.cfg.MaxRemoteBytes, remoteTooLarge())
	if err != nil {
		return err
	}
	defer st.remove()
	if err := s.keep(ctx, st); err != nil {
		return err
	}
	// created_ts is when the cache was filled: the spec's freeze counts
	// re-downloaded media as new.
	if err := s.db.UpsertRemoteMedia(ctx, store.Media{Origin: server, MediaID: mediaID, ContentType: part.contentType,
		Filename: part.filename, Size: st.size, SHA256: st.hash, CreatedTS: s.now().UnixMilli()}); err != nil {
		return err
	}
	return s.db.InheritQuarantine(ctx, store.MediaRef{Origin: server, MediaID: mediaID})
}

func waitQuery(timeout time.Duration) string {
	if timeout <= 0 {
		timeout = DefaultWait
	}
	return "timeout_ms=" + strconv.FormatInt(min(timeout, MaxWait).Milliseconds(), 10)
}

func remoteTooLarge() *mxerr.Error {
	return mxerr.TooLarge("Remote content is too large").WithStatus(http.StatusBadGateway)
}

func remoteFailed(format string, args ...any) *mxerr.Error {
	return mxerr.Unknown(format, args...).WithStatus(http.StatusBadGateway)
}

// remotePart is the media part of a federation media answer.
type remotePart struct {
	contentType, filename string
	body                  io.ReadCloser
}

// askRemote sends a signed media request and opens the media part of
// the answer, following a Location part.
func (s *Service) askRemote(ctx context.Context, server, path string) (*remotePart, error) {
	resp, err := s.remote.FetchMedia(ctx, server, path)
	if err != nil {
		// Dial details stay in the log (see previewer.fetch).
		s.log.DebugContext(ctx, "remote media", "server", server, "err", err)
		return nil, remoteFailed("Could not reach %s", server)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, remoteStatus(resp)
	}
	part, err := readMultipart(resp)
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	if part.location == "" {
		body := closeBoth{part.body, resp.Body}
		return &remotePart{contentType: part.contentType, filename: part.filename, body: s.remoteBody(ctx, server, body)}, nil
	}
	resp.Body.Close()
	rp, err := s.followLocation(ctx, part.location)
	if err != nil {
		return nil, err
	}
	rp.body = s.remoteBody(ctx, server, rp.body)
	return rp, nil
}

// remoteBody reads another server's media bytes, turning a transport
// failure (the connection cut mid-body, fewer bytes than Content-Length)
// into the 502 of a server that could not be reached: the failure is
// theirs, not ours, and its details stay in the log as for a failed
// dial. Without it the raw error reached the client as a 500.
func (s *Service) remoteBody(ctx context.Context, server string, body io.ReadCloser) io.ReadCloser {
	return &failingBody{ReadCloser: body, fail: func(err error) error {
		s.log.DebugContext(ctx, "remote media body", "server", server, "err", err)
		return remoteFailed("Could not reach %s", server)
	}}
}

type failingBody struct {
	io.ReadCloser
	fail func(error) error
}

func (b *failingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = b.fail(err)
	}
	return n, err
}

type closeBoth struct {
	io.Reader
	outer io.Closer
}

func (c closeBoth) Close() error { return c.outer.Close() }

// remoteStatus turns another server's error answer into ours, or
// errUnknownEndpoint when the server does not serve the endpoint.
func remoteStatus(resp *http.Response) error {
	unknown, code := unknownEndpoint(resp)
	if unknown {
		return errUnknownEndpoint
	}
	return remoteCode(resp.StatusCode, code)
}

// remoteCode is our error for another server's status and errcode.
func remoteCode(status int, code string) error {
	switch {
	case status == http.StatusNotFound:
		return mxerr.NotFound("Not found")
	case code == "M_NOT_YET_UPLOADED":
		return mxerr.NotYetUploaded("Content has not yet been uploaded")
	case code == "M_TOO_LARGE":
		return remoteTooLarge()
	}
	return remoteFailed("Remote server answered %d %s", status, code)
}

type multipartAnswer struct {
	contentType, filename, location string
	body                            io.Reader
}

// readMultipart reads a multipart/mixed federation media answer: a JSON
// metadata part, then the bytes or a Location header.
func readMultipart(resp *http.Response) (*multipartAnswer, error) {
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return nil, remoteFailed("Remote server answered %q, not multipart/mixed", resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	meta, err := mr.NextPart()
	if err != nil {
		return nil, remoteFailed("Malformed multipart answer")
	}
	var metadata map[string]any
	if err := json.NewDecoder(io.LimitReader(meta, 64<<10)).Decode(&metadata); err != nil {
		return nil, remoteFailed("Malformed media metadata")
	}
	data, err := mr.NextPart()
	if err != nil {
		return nil, remoteFailed("Multipart answer has no media part")
	}
	a := &multipartAnswer{contentType: data.Header.Get("Content-Type"), location: data.Header.Get("Location"), body: data}
	if a.contentType == "" {
		a.contentType = "application/octet-stream"
	}
	if _, p, err := mime.ParseMediaType(data.Header.Get("Content-Disposition")); err == nil {
		a.filename = p["filename"]
	}
	return a, nil
}

// followLocation fetches media a remote server redirected to, through
// the outbound policy: the address is the remote server's choice.
func (s *Service) followLocation(ctx context.Context, location string) (*remotePart, error) {
	resp, err := fetchURL(ctx, s.outbound, s.locations, location)
	if err != nil {
		s.log.DebugContext(ctx, "remote media location", "location", location, "err", err)
		return nil, remoteFailed("Failed to fetch remote media")
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, remoteFailed("Media location answered %d", resp.StatusCode)
	}
	return plainPart(resp), nil
}

// WriteMultipart answers a federation media request: an empty JSON
// metadata object, then the bytes with their type and disposition.
func WriteMultipart(w http.ResponseWriter, c *Content) error {
	defer c.Body.Close()
	mw := multipart.NewWriter(w)
	w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
	w.WriteHeader(http.StatusOK)
	meta, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	if err != nil {
		return err
	}
	if _, err := meta.Write([]byte("{}")); err != nil {
		return err
	}
	ct, disposition := servingHeaders(c)
	data, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {ct}, "Content-Disposition": {disposition}})
	if err != nil {
		return err
	}
	if _, err := io.Copy(data, c.Body); err != nil {
		return err
	}
	return mw.Close()
}
