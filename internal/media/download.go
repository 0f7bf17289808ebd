package media

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Content is media ready to be served; the caller closes Body.
type Content struct {
	ContentType string
	Filename    string
	Size        int64
	Body        io.ReadCloser
	// Thumbnail marks a thumbnail, always served inline.
	Thumbnail bool
}

// Request says how media is asked for.
type Request struct {
	// Timeout is how long to wait for an async upload's bytes (the
	// spec's timeout_ms; 20 s by default, at most MaxWait).
	Timeout time.Duration
	// Legacy is a request on the unauthenticated /_matrix/media/v3
	// endpoints, frozen for media newer than the cutoff.
	Legacy bool
	// LocalOnly refuses other servers' media (federation requests).
	LocalOnly bool
	// QuarantineBypassedBy is the server admin who asked for quarantined
	// media with Synapse's admin_unsafely_bypass_quarantine ('' for
	// everyone else, who is refused it).
	QuarantineBypassedBy string
}

// ParseTimeout reads a request's timeout_ms (spec v1.7), both APIs' form;
// 0 when absent (the default applies).
func ParseTimeout(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("timeout_ms")
	if v == "" {
		return 0, nil
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms < 0 {
		return 0, mxerr.InvalidParam("timeout_ms must be a non-negative integer")
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// DefaultWait and MaxWait bound timeout_ms (spec default 20 s; Synapse
// caps it at two minutes).
const (
	DefaultWait = 20 * time.Second
	MaxWait     = 2 * time.Minute
)

// Download opens the content of mxc://server/mediaID, fetching another
// server's media over federation (and caching it) when needed.
func (s *Service) Download(ctx context.Context, server, mediaID string, req Request) (*Content, error) {
	m, err := s.lookup(ctx, server, mediaID, req)
	if err != nil {
		return nil, err
	}
	body, err := s.open(ctx, m.SHA256)
	if err != nil {
		return nil, err
	}
	s.touch(m.Origin, m.MediaID)
	return &Content{ContentType: m.ContentType, Filename: m.Filename, Size: m.Size, Body: body}, nil
}

func (s *Service) open(ctx context.Context, hash string) (io.ReadCloser, error) {
	body, err := s.storage.Get(ctx, hash)
	if errors.Is(err, ErrNoFile) {
		s.log.Error("media file missing from storage", "sha256", hash)
		return nil, mxerr.NotFound("Not found")
	}
	return body, err
}

// lookup finds the metadata of media with bytes, waiting for an async
// upload and fetching remote media as needed.
func (s *Service) lookup(ctx context.Context, server, mediaID string, req Request) (store.Media, error) {
	if err := s.refusedByReputation(ctx, server, mediaID); err != nil {
		return store.Media{}, err
	}
	local := server == s.serverName
	if !local && req.LocalOnly {
		if err := checkRef(server, mediaID); err != nil {
			return store.Media{}, err
		}
		return store.Media{}, mxerr.NotFound("Not found")
	}
	m, err := s.record(ctx, server, mediaID, req.QuarantineBypassedBy)
	switch {
	case err == nil && m.SHA256 == "":
		m, err = s.waitUpload(ctx, m, req.Timeout)
	case errors.Is(err, store.ErrNotFound) && !local && !s.frozen(req, s.now().UnixMilli()):
		m, err = s.fetchRemote(ctx, server, mediaID, req.Timeout)
	case errors.Is(err, store.ErrNotFound):
		err = mxerr.NotFound("Not found")
	}
	if err != nil {
		return store.Media{}, err
	}
	if s.frozen(req, m.CreatedTS) {
		// Spec 1.12 freeze: media stored after the cutoff only on the
		// authenticated endpoints; Synapse answers 404.
		return store.Media{}, mxerr.NotFound("Not found")
	}
	return m, nil
}

// record reads the metadata of mxc://server/mediaID for serving it or a
// thumbnail of it (ErrNotFound when none is stored). It is the one place
// the quarantine is enforced: quarantined media (Synapse's admin API) is
// answered 404 M_NOT_FOUND as Synapse does, on every endpoint that
// serves media (download, thumbnail, the legacy and federation ones);
// a quarantined remote media keeps its row, so it is never fetched again.
// Only a server admin who asks to bypass the quarantine (bypassedBy,
// logged) gets it, as Synapse allows on the client endpoints.
func (s *Service) record(ctx context.Context, server, mediaID, bypassedBy string) (store.Media, error) {
	if err := checkRef(server, mediaID); err != nil {
		return store.Media{}, err
	}
	m, err := s.db.GetMedia(ctx, server, mediaID)
	if err == nil && m.QuarantinedBy != "" {
		if bypassedBy == "" {
			return store.Media{}, mxerr.NotFound("Not found")
		}
		s.log.WarnContext(ctx, "admin action", "admin", bypassedBy, "action", "read quarantined media", "server_name", server, "media_id", mediaID)
	}
	return m, err
}

// frozen reports whether media stored at ts is refused to req.
func (s *Service) frozen(req Request, ts int64) bool {
	return req.Legacy && s.cfg.EnableAuthenticatedMedia && ts >= s.legacyCutoff
}

// waitUpload waits for the bytes of an async upload.
func (s *Service) waitUpload(ctx context.Context, m store.Media, timeout time.Duration) (store.Media, error) {
	if timeout <= 0 {
		timeout = DefaultWait
	}
	timeout = min(timeout, MaxWait)
	if m.Origin != s.serverName {
		return store.Media{}, mxerr.NotFound("Not found")
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		if m.UnusedExpiresTS <= s.now().UnixMilli() {
			return store.Media{}, mxerr.NotFound("Not found")
		}
		// Take the signal before reading again, so that an upload
		// finishing in between is not missed.
		signal := s.uploadSignal(m.MediaID)
		again, err := s.record(ctx, m.Origin, m.MediaID, "")
		if err != nil {
			return store.Media{}, err
		}
		if again.SHA256 != "" {
			return again, nil
		}
		select {
		case <-signal:
		case <-deadline.C:
			return store.Media{}, mxerr.NotYetUploaded("Content has not yet been uploaded")
		case <-ctx.Done():
			return store.Media{}, ctx.Err()
		}
	}
}
