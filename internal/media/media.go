// Package media is the content repository (spec "Content repository"):
// uploads, downloads, thumbnails, other servers' media fetched over
// federation and cached, and URL previews. Bytes are kept in a Storage by
// their SHA-256; metadata in the database.
package media

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/outbound"
	"github.com/myelin-chat/myelin/internal/periodic"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the metadata storage the service uses.
type Store interface {
	InsertMedia(ctx context.Context, m store.Media) error
	UpsertRemoteMedia(ctx context.Context, m store.Media) error
	GetMedia(ctx context.Context, origin, mediaID string) (store.Media, error)
	CompletePendingMedia(ctx context.Context, m store.Media) error
	CountPendingMedia(ctx context.Context, uploader string, nowTS int64) (int, error)
	DeleteExpiredPendingMedia(ctx context.Context, nowTS int64) (int64, error)
	PutThumbnail(ctx context.Context, t store.Thumbnail) error
	GetThumbnail(ctx context.Context, origin, mediaID string, reqWidth, reqHeight int, method string) (store.Thumbnail, error)
	MediaSetting(ctx context.Context, name string, def int64) (int64, error)
	AdminStore
	AccessStore
}

// Remote sends X-Matrix signed GET requests to other servers; the
// federation client implements it. The caller closes the body.
type Remote interface {
	FetchMedia(ctx context.Context, server, path string) (*http.Response, error)
}

// Options configure the service.
type Options struct {
	ServerName string
	Config     config.Media
	Store      Store
	// Dir holds the files (when Storage is nil) and staging files.
	Dir string
	// Storage keeps the bytes; nil means files under Dir.
	Storage Storage
	// Remote fetches other servers' media; nil serves local media only.
	Remote Remote
	// Outbound decides which addresses URL previews and remote media
	// locations may reach (nil: outbound.Default()).
	Outbound *outbound.Policy
	Log      *slog.Logger
	// Reputation refuses the media of servers the server's reputation
	// feeds list (nil: none).
	Reputation MediaScreen
}

// Service is the content repository.
type Service struct {
	serverName string
	cfg        config.Media
	db         Store
	storage    Storage
	remote     Remote
	reputation MediaScreen
	log        *slog.Logger
	tmpDir     string
	now        func() time.Time
	// legacyCutoff is when this server first ran with authenticated
	// media: the unauthenticated endpoints serve only older media.
	legacyCutoff int64
	previews     *previewer
	// outbound and locations fetch the Location a remote server's media
	// answer points to: an address the remote server chooses.
	outbound  *outbound.Policy
	locations *http.Client

	mu sync.Mutex
	// uploaded wakes downloads waiting for an async upload, by media ID.
	uploaded map[string]chan struct{}
	// fetching joins concurrent fetches of the same remote media.
	fetching map[string]*fetch

	// accessed is the access times not written yet (access.go).
	accessMu   sync.Mutex
	accessed   map[store.MediaRef]int64
	accessWake chan struct{}
}

type fetch struct {
	done chan struct{}
	err  error
}

// New opens the content repository, recording at first start the time
// after which new media is kept off the unauthenticated endpoints.
func New(ctx context.Context, o Options) (*Service, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Service{serverName: o.ServerName, cfg: o.Config, db: o.Store, storage: o.Storage, remote: o.Remote, reputation: o.Reputation, log: o.Log,
		tmpDir: filepath.Join(o.Dir, "tmp"), now: time.Now, uploaded: map[string]chan struct{}{}, fetching: map[string]*fetch{},
		accessed: map[store.MediaRef]int64{}, accessWake: make(chan struct{}, 1)}
	if s.storage == nil {
		fs, err := NewFileStorage(o.Dir)
		if err != nil {
			return nil, err
		}
		s.storage = fs
	}
	if err := os.MkdirAll(s.tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	cutoff, err := o.Store.MediaSetting(ctx, "legacy_cutoff_ts", s.now().UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("media: legacy cutoff: %w", err)
	}
	s.legacyCutoff = cutoff
	if o.Outbound == nil {
		o.Outbound = outbound.Default()
	}
	s.outbound = o.Outbound
	s.locations = o.Outbound.Client(outbound.ClientOptions{Timeout: o.Config.URLPreview.Timeout, UserAgent: "Myelin", MaxRedirects: 10})
	p, err := newPreviewer(s, o.Config.URLPreview, o.Outbound)
	if err != nil {
		return nil, err
	}
	s.previews = p
	return s, nil
}

// Storage is where the bytes are kept (tests look at the files).
func (s *Service) Storage() Storage { return s.storage }

// Config is the public content repository configuration (/media/config).
func (s *Service) Config() map[string]any {
	return map[string]any{"m.upload.size": s.cfg.MaxUploadBytes}
}

// MXC is the mxc:// URI of a media ID of a server.
func MXC(server, mediaID string) string { return "mxc://" + server + "/" + mediaID }

const idAlphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// newMediaID makes a random 24-character ID from the alphabet the spec
// allows (Synapse's length).
func newMediaID() string {
	b := make([]byte, 24)
	max := big.NewInt(int64(len(idAlphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(err)
		}
		b[i] = idAlphabet[n.Int64()]
	}
	return string(b)
}

// validMediaID enforces the spec's media ID grammar ([A-Za-z0-9_-]),
// which keeps IDs from naming paths (spec "Security considerations").
func validMediaID(id string) bool {
	if id == "" || len(id) > 255 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkRef(server, mediaID string) error {
	// A malformed server name is the client's mistake, as Synapse
	// answers (400 M_INVALID_PARAM), not a server that could not be
	// reached; a malformed media ID simply names nothing.
	if config.ValidateServerName(server) != nil {
		return mxerr.InvalidParam("Invalid server name")
	}
	if !validMediaID(mediaID) {
		return mxerr.NotFound("Not found")
	}
	return nil
}

// staged is an upload written to a temporary file while hashed.
type staged struct {
	path string
	hash string
	size int64
}

func (st *staged) remove() { os.Remove(st.path) }

// stage copies body to a temporary file, hashing it, and refuses more
// than limit bytes with tooLarge.
func (s *Service) stage(body io.Reader, limit int64, tooLarge *mxerr.Error) (*staged, error) {
	f, err := os.CreateTemp(s.tmpDir, "upload-*")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(body, limit+1))
	st := &staged{path: f.Name(), hash: hex.EncodeToString(h.Sum(nil)), size: n}
	if err != nil {
		st.remove()
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, err
	}
	if n > limit {
		st.remove()
		return nil, tooLarge
	}
	return st, nil
}

// keep moves a staged file into the storage.
func (s *Service) keep(ctx context.Context, st *staged) error {
	f, err := os.Open(st.path)
	if err != nil {
		return err
	}
	defer f.Close()
	return s.storage.Put(ctx, st.hash, f)
}

func (s *Service) uploadTooLarge() *mxerr.Error {
	return mxerr.TooLarge("Upload exceeds the %d byte limit", s.cfg.MaxUploadBytes)
}

// Upload stores a user's file under a new media ID and returns its mxc:// URI.
func (s *Service) Upload(ctx context.Context, uploader, contentType, filename string, body io.Reader) (string, error) {
	st, err := s.stage(body, s.cfg.MaxUploadBytes, s.uploadTooLarge())
	if err != nil {
		return "", err
	}
	defer st.remove()
	if err := s.keep(ctx, st); err != nil {
		return "", err
	}
	m := store.Media{Origin: s.serverName, MediaID: newMediaID(), ContentType: contentType, Filename: filename,
		Size: st.size, SHA256: st.hash, Uploader: uploader, CreatedTS: s.now().UnixMilli()}
	if err := s.db.InsertMedia(ctx, m); err != nil {
		return "", err
	}
	if err := s.db.InheritQuarantine(ctx, store.MediaRef{Origin: m.Origin, MediaID: m.MediaID}); err != nil {
		return "", err
	}
	s.pregenerate(ctx, m, st.path)
	return MXC(s.serverName, m.MediaID), nil
}

// Create reserves a media ID for a later upload (async upload, spec
// /media/v1/create), returning its URI and when it lapses unused.
func (s *Service) Create(ctx context.Context, uploader string) (string, int64, error) {
	now := s.now().UnixMilli()
	n, err := s.db.CountPendingMedia(ctx, uploader, now)
	if err != nil {
		return "", 0, err
	}
	if n >= s.cfg.MaxPendingUploads {
		// Synapse: M_LIMIT_EXCEEDED until one of the pending URIs is used or lapses.
		return "", 0, mxerr.LimitExceeded(s.cfg.UnusedExpiry.Milliseconds())
	}
	expires := now + s.cfg.UnusedExpiry.Milliseconds()
	m := store.Media{Origin: s.serverName, MediaID: newMediaID(), Uploader: uploader, CreatedTS: now, UnusedExpiresTS: expires}
	if err := s.db.InsertMedia(ctx, m); err != nil {
		return "", 0, err
	}
	return MXC(s.serverName, m.MediaID), expires, nil
}

// UploadTo gives bytes to a media ID from Create: only its creator may,
// once, before it lapses.
func (s *Service) UploadTo(ctx context.Context, uploader, server, mediaID, contentType, filename string, body io.Reader) error {
	if server != s.serverName || !validMediaID(mediaID) {
		return mxerr.NotFound("Unknown media ID")
	}
	m, err := s.db.GetMedia(ctx, server, mediaID)
	if errors.Is(err, store.ErrNotFound) {
		return mxerr.NotFound("Unknown media ID")
	} else if err != nil {
		return err
	}
	if m.Uploader != uploader {
		return mxerr.Forbidden("You did not create this media ID")
	}
	if m.SHA256 != "" {
		return mxerr.CannotOverwriteMedia("Media ID already has content")
	}
	if m.UnusedExpiresTS <= s.now().UnixMilli() {
		return mxerr.NotFound("Media ID expired")
	}
	st, err := s.stage(body, s.cfg.MaxUploadBytes, s.uploadTooLarge())
	if err != nil {
		return err
	}
	defer st.remove()
	if err := s.keep(ctx, st); err != nil {
		return err
	}
	m.ContentType, m.Filename, m.Size, m.SHA256 = contentType, filename, st.size, st.hash
	if err := s.db.CompletePendingMedia(ctx, m); errors.Is(err, store.ErrNotFound) {
		return mxerr.CannotOverwriteMedia("Media ID already has content")
	} else if err != nil {
		return err
	}
	if err := s.db.InheritQuarantine(ctx, store.MediaRef{Origin: server, MediaID: mediaID}); err != nil {
		return err
	}
	s.wake(mediaID)
	s.pregenerate(ctx, m, st.path)
	return nil
}

// wake releases the downloads waiting for an async upload.
func (s *Service) wake(mediaID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.uploaded[mediaID]; ok {
		close(ch)
		delete(s.uploaded, mediaID)
	}
}

func (s *Service) uploadSignal(mediaID string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.uploaded[mediaID]
	if !ok {
		ch = make(chan struct{})
		s.uploaded[mediaID] = ch
	}
	return ch
}

// Run forgets lapsed async uploads hourly and writes the media access
// times (access.go) until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.runAccessFlush(ctx)
	}()
	defer wg.Wait()
	periodic.NowAndEvery(ctx, time.Hour, func() {
		if n, err := s.db.DeleteExpiredPendingMedia(ctx, s.now().UnixMilli()); err != nil && ctx.Err() == nil {
			s.log.Warn("forgetting lapsed media IDs", "err", err)
		} else if n > 0 {
			s.log.Info("forgot lapsed media IDs", "count", n)
		}
	})
	return nil
}

// Log is the service's logger, for handlers that write their own answers.
func (s *Service) Log() *slog.Logger { return s.log }
