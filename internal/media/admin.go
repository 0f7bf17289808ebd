package media

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// The rules of Synapse's media admin API (docs/admin_api/media_admin_api.md):
// quarantine, protection, deletion, the remote cache purge, and the
// users' media statistics. The admin package serves them over HTTP.

// AdminStore is the storage of the media admin API.
type AdminStore interface {
	QuarantineMedia(ctx context.Context, refs []store.MediaRef, localServer, admin string, nowTS int64) (int64, error)
	UnquarantineMedia(ctx context.Context, ref store.MediaRef, localServer string) error
	InheritQuarantine(ctx context.Context, ref store.MediaRef) error
	SetMediaProtected(ctx context.Context, ref store.MediaRef, protected bool) error
	UploadedMedia(ctx context.Context, origin, uploader string) ([]string, error)
	RoomURLEvents(ctx context.Context, roomID string) ([]string, error)
	DeleteMediaRows(ctx context.Context, ref store.MediaRef) ([]string, error)
	MediaHashInUse(ctx context.Context, sha256 string) (bool, error)
	OldLocalMedia(ctx context.Context, origin string, beforeTS, sizeGT int64, keepProfiles bool) ([]string, error)
	OldRemoteMedia(ctx context.Context, localServer string, beforeTS int64) ([]store.MediaRef, error)
	OldRemoteThumbnailsOnly(ctx context.Context, localServer string, beforeTS int64) ([]store.MediaRef, error)
	DeleteThumbnailRows(ctx context.Context, ref store.MediaRef) ([]string, error)
	MediaUsageByUser(ctx context.Context, origin string, fromTS, untilTS int64) ([]store.UserMediaUsage, error)
	RoomVersion(ctx context.Context, roomID string) (string, error)
}

// IsLocal reports whether server is this server's name.
func (s *Service) IsLocal(server string) bool { return server == s.serverName }

// Quarantine hides mxc://server/mediaID from everyone (and the media
// holding the same bytes); protected media stays served. Quarantining
// remote media that is not cached keeps it from ever being fetched.
func (s *Service) Quarantine(ctx context.Context, admin, server, mediaID string) error {
	if err := checkRef(server, mediaID); err != nil {
		return err
	}
	_, err := s.db.QuarantineMedia(ctx, []store.MediaRef{{Origin: server, MediaID: mediaID}}, s.serverName, admin, s.now().UnixMilli())
	return err
}

// Unquarantine serves mxc://server/mediaID (and its copies) again.
func (s *Service) Unquarantine(ctx context.Context, server, mediaID string) error {
	if err := checkRef(server, mediaID); err != nil {
		return err
	}
	return s.db.UnquarantineMedia(ctx, store.MediaRef{Origin: server, MediaID: mediaID}, s.serverName)
}

// QuarantineUser quarantines the local media a user uploaded, returning
// how many were newly quarantined.
func (s *Service) QuarantineUser(ctx context.Context, admin, userID string) (int64, error) {
	ids, err := s.db.UploadedMedia(ctx, s.serverName, userID)
	if err != nil {
		return 0, err
	}
	refs := make([]store.MediaRef, len(ids))
	for i, id := range ids {
		refs[i] = store.MediaRef{Origin: s.serverName, MediaID: id}
	}
	return s.db.QuarantineMedia(ctx, refs, s.serverName, admin, s.now().UnixMilli())
}

// QuarantineRoom quarantines every mxc:// URI the room's events name,
// local and remote (cached or not).
func (s *Service) QuarantineRoom(ctx context.Context, admin, roomID string) (int64, error) {
	local, remote, err := s.roomMedia(ctx, roomID)
	if err != nil {
		return 0, err
	}
	return s.db.QuarantineMedia(ctx, append(local, remote...), s.serverName, admin, s.now().UnixMilli())
}

// RoomMedia lists the mxc:// URIs a room's events name, local and remote
// (Synapse's GET /room/{roomId}/media; encrypted events are opaque).
func (s *Service) RoomMedia(ctx context.Context, roomID string) (local, remote []string, err error) {
	if _, err := s.db.RoomVersion(ctx, roomID); errors.Is(err, store.ErrNotFound) {
		return nil, nil, mxerr.NotFound("Room not found")
	} else if err != nil {
		return nil, nil, err
	}
	l, r, err := s.roomMedia(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	local, remote = []string{}, []string{}
	for _, ref := range l {
		local = append(local, MXC(ref.Origin, ref.MediaID))
	}
	for _, ref := range r {
		remote = append(remote, MXC(ref.Origin, ref.MediaID))
	}
	return local, remote, nil
}

// roomMedia reads the media a room's events name: content.url,
// content.info.thumbnail_url, and the url of content.file and
// content.info.thumbnail_file (as Synapse's _get_media_mxcs_in_room,
// plus the attachment forms).
func (s *Service) roomMedia(ctx context.Context, roomID string) (local, remote []store.MediaRef, err error) {
	events, err := s.db.RoomURLEvents(ctx, roomID)
	if err != nil {
		return nil, nil, err
	}
	seen := map[store.MediaRef]bool{}
	for _, raw := range events {
		for _, uri := range eventMXCs(raw) {
			ref, ok := parseMXC(uri)
			if !ok || seen[ref] {
				continue
			}
			seen[ref] = true
			if ref.Origin == s.serverName {
				local = append(local, ref)
			} else {
				remote = append(remote, ref)
			}
		}
	}
	return local, remote, nil
}

// eventMXCs are the media URIs an event's content names.
func eventMXCs(raw string) []string {
	type file struct {
		URL string `json:"url"`
	}
	var ev struct {
		Content struct {
			URL  any  `json:"url"`
			File file `json:"file"`
			Info struct {
				ThumbnailURL  any  `json:"thumbnail_url"`
				ThumbnailFile file `json:"thumbnail_file"`
			} `json:"info"`
		} `json:"content"`
	}
	// A content of the wrong shape names no media (the fields are
	// decoded loosely: any type, then only strings kept).
	if json.Unmarshal([]byte(raw), &ev) != nil {
		return nil
	}
	var out []string
	for _, v := range []any{ev.Content.URL, ev.Content.File.URL, ev.Content.Info.ThumbnailURL, ev.Content.Info.ThumbnailFile.URL} {
		if s, ok := v.(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}

// parseMXC splits mxc://server/mediaID, refusing what names no media.
func parseMXC(uri string) (store.MediaRef, bool) {
	rest, ok := strings.CutPrefix(uri, "mxc://")
	if !ok {
		return store.MediaRef{}, false
	}
	server, id, ok := strings.Cut(rest, "/")
	if !ok || checkRef(server, id) != nil {
		return store.MediaRef{}, false
	}
	return store.MediaRef{Origin: server, MediaID: id}, true
}

// Protect keeps a local media ID from ever being quarantined (sticker
// packs and the like); Unprotect (protected false) lifts that. Like
// Synapse, an unknown media ID is not an error.
func (s *Service) Protect(ctx context.Context, mediaID string, protected bool) error {
	if !validMediaID(mediaID) {
		return nil
	}
	err := s.db.SetMediaProtected(ctx, store.MediaRef{Origin: s.serverName, MediaID: mediaID}, protected)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// Info describes a stored media ID (Synapse's media_info).
type Info struct {
	Origin             string
	MediaID            string
	UserID             string
	ContentType        string
	Size               int64
	Filename           string
	CreatedTS          int64
	SHA256             string
	QuarantinedBy      string
	SafeFromQuarantine bool
	// Authenticated is false for media stored before the unauthenticated
	// endpoints were frozen (served on both APIs), true after.
	Authenticated bool
	// LastAccessTS is when it was last downloaded or thumbnailed (0:
	// never).
	LastAccessTS int64
}

// MediaInfo describes local or cached remote media; 404 for media that
// is not stored (a remote media not cached, a pending upload).
func (s *Service) MediaInfo(ctx context.Context, server, mediaID string) (Info, error) {
	if err := checkRef(server, mediaID); err != nil {
		return Info{}, err
	}
	if err := s.FlushAccessTimes(ctx); err != nil {
		return Info{}, err
	}
	m, err := s.db.GetMedia(ctx, server, mediaID)
	if errors.Is(err, store.ErrNotFound) || err == nil && m.SHA256 == "" {
		return Info{}, mxerr.NotFound("Unknown media")
	} else if err != nil {
		return Info{}, err
	}
	return Info{Origin: m.Origin, MediaID: m.MediaID, UserID: m.Uploader, ContentType: m.ContentType, Size: m.Size,
		Filename: m.Filename, CreatedTS: m.CreatedTS, SHA256: m.SHA256, QuarantinedBy: m.QuarantinedBy,
		SafeFromQuarantine: m.SafeFromQuarantine, Authenticated: s.cfg.EnableAuthenticatedMedia && m.CreatedTS >= s.legacyCutoff,
		LastAccessTS: m.LastAccessTS}, nil
}

// Delete removes a local media ID, its thumbnails and the files nothing
// else uses; Synapse refuses remote media here (400) and answers 404 for
// an unknown ID.
func (s *Service) Delete(ctx context.Context, server, mediaID string) error {
	if err := checkRef(server, mediaID); err != nil {
		return err
	}
	if server != s.serverName {
		return mxerr.InvalidParam("Can only delete local media")
	}
	return s.deleteOne(ctx, store.MediaRef{Origin: server, MediaID: mediaID})
}

func (s *Service) deleteOne(ctx context.Context, ref store.MediaRef) error {
	hashes, err := s.db.DeleteMediaRows(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return mxerr.NotFound("Unknown media")
	} else if err != nil {
		return err
	}
	return s.dropFiles(ctx, hashes)
}

// dropFiles deletes the files of hashes that no media or thumbnail uses.
func (s *Service) dropFiles(ctx context.Context, hashes []string) error {
	for _, h := range hashes {
		// Bytes are shared by content: another media ID (or thumbnail)
		// with the same bytes keeps the file.
		inUse, err := s.db.MediaHashInUse(ctx, h)
		if err != nil {
			return err
		}
		if !inUse {
			if err := s.storage.Delete(ctx, h); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteOld removes the local media not read since beforeTS (or, never
// read, stored before it) and larger than sizeGT bytes (never
// quarantined or protected media; with keepProfiles never a user's
// avatar), returning the deleted IDs: Synapse's delete by date, which
// keeps media accessed recently.
func (s *Service) DeleteOld(ctx context.Context, beforeTS, sizeGT int64, keepProfiles bool) ([]string, error) {
	if err := s.FlushAccessTimes(ctx); err != nil {
		return nil, err
	}
	ids, err := s.db.OldLocalMedia(ctx, s.serverName, beforeTS, sizeGT, keepProfiles)
	if err != nil {
		return nil, err
	}
	deleted := []string{}
	for _, id := range ids {
		err := s.deleteOne(ctx, store.MediaRef{Origin: s.serverName, MediaID: id})
		if e, ok := mxerr.As(err); ok && e.Code == "M_NOT_FOUND" {
			continue // deleted meanwhile
		} else if err != nil {
			return deleted, err
		}
		deleted = append(deleted, id)
	}
	return deleted, nil
}

// PurgeRemoteCache removes the cached copies of other servers' media
// not read since beforeTS (or, never read, fetched before it), and the thumbnails kept of remote media whose
// original was never fetched, returning how many media; they are
// fetched again when next asked for. Quarantined media is kept (never
// fetched again).
func (s *Service) PurgeRemoteCache(ctx context.Context, beforeTS int64) (int, error) {
	if err := s.FlushAccessTimes(ctx); err != nil {
		return 0, err
	}
	thumbs, err := s.db.OldRemoteThumbnailsOnly(ctx, s.serverName, beforeTS)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ref := range thumbs {
		hashes, err := s.db.DeleteThumbnailRows(ctx, ref)
		if err != nil {
			return n, err
		}
		if err := s.dropFiles(ctx, hashes); err != nil {
			return n, err
		}
		n++
	}
	purged, err := s.purgeRemoteMedia(ctx, beforeTS)
	return n + purged, err
}

func (s *Service) purgeRemoteMedia(ctx context.Context, beforeTS int64) (int, error) {
	refs, err := s.db.OldRemoteMedia(ctx, s.serverName, beforeTS)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ref := range refs {
		err := s.deleteOne(ctx, ref)
		if e, ok := mxerr.As(err); ok && e.Code == "M_NOT_FOUND" {
			continue
		} else if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// UserUsage is one user's local media, for the statistics API.
type UserUsage struct {
	UserID      string
	DisplayName string
	Count       int64
	Length      int64
}

// UsageQuery selects and orders the statistics of users' media.
type UsageQuery struct {
	FromTS, UntilTS int64
	SearchTerm      string
	// OrderBy is user_id (default), displayname, media_length or media_count.
	OrderBy string
	Reverse bool
}

// UsageOrders are the orders UsageQuery.OrderBy accepts.
var UsageOrders = map[string]bool{"": true, "user_id": true, "displayname": true, "media_length": true, "media_count": true}

// UserMediaUsage sums each user's local media (Synapse's
// statistics/users/media), filtered and ordered, before paging.
func (s *Service) UserMediaUsage(ctx context.Context, q UsageQuery) ([]UserUsage, error) {
	rows, err := s.db.MediaUsageByUser(ctx, s.serverName, q.FromTS, q.UntilTS)
	if err != nil {
		return nil, err
	}
	term := strings.ToLower(q.SearchTerm)
	out := []UserUsage{}
	for _, r := range rows {
		u := UserUsage{UserID: r.UserID, Count: r.Count, Length: r.Length}
		if r.DisplayNameJSON != "" {
			_ = json.Unmarshal([]byte(r.DisplayNameJSON), &u.DisplayName) // a non-string display name reads as none
		}
		localpart, _, _ := strings.Cut(strings.TrimPrefix(u.UserID, "@"), ":")
		if term != "" && !strings.Contains(strings.ToLower(localpart), term) && !strings.Contains(strings.ToLower(u.DisplayName), term) {
			continue
		}
		out = append(out, u)
	}
	less := func(a, b UserUsage) bool {
		switch q.OrderBy {
		case "displayname":
			if a.DisplayName != b.DisplayName {
				return a.DisplayName < b.DisplayName
			}
		case "media_length":
			if a.Length != b.Length {
				return a.Length < b.Length
			}
		case "media_count":
			if a.Count != b.Count {
				return a.Count < b.Count
			}
		}
		return a.UserID < b.UserID
	}
	sort.Slice(out, func(i, j int) bool {
		if q.Reverse {
			return less(out[j], out[i])
		}
		return less(out[i], out[j])
	})
	return out, nil
}
