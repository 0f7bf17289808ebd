package keys

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// BackupVersion is a key backup version as /room_keys/version shows it.
type BackupVersion struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Count     int64           `json:"count"`
	Etag      string          `json:"etag"`
	Version   string          `json:"version"`
}

// SessionData is one backed-up session (the spec's KeyBackupData).
type SessionData struct {
	FirstMessageIndex int64           `json:"first_message_index"`
	ForwardedCount    int64           `json:"forwarded_count"`
	IsVerified        bool            `json:"is_verified"`
	SessionData       json.RawMessage `json:"session_data"`
}

// RoomSessions are a room's backed-up sessions.
type RoomSessions struct {
	Sessions map[string]SessionData `json:"sessions"`
}

// BackupState is what writes to a backup answer: its etag and count.
type BackupState struct {
	Etag  string `json:"etag"`
	Count int64  `json:"count"`
}

// parseVersion reads a version parameter; a version that is not one of
// ours is simply unknown.
func parseVersion(v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, mxerr.NotFound("Unknown backup version")
	}
	return n, nil
}

// CreateBackup starts a new backup version, which becomes the current one.
func (s *Service) CreateBackup(ctx context.Context, userID, algorithm string, authData json.RawMessage) (string, error) {
	if algorithm == "" {
		return "", mxerr.MissingParam("Missing algorithm")
	}
	if !isObject(authData) {
		return "", mxerr.MissingParam("auth_data must be an object")
	}
	v, err := s.store.CreateBackupVersion(ctx, userID, algorithm, string(authData))
	return strconv.FormatInt(v, 10), err
}

func isObject(raw json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(raw, &m) == nil && m != nil
}

// Backup loads a version ("" for the current one).
func (s *Service) Backup(ctx context.Context, userID, version string) (*BackupVersion, error) {
	var n int64
	if version != "" {
		var err error
		if n, err = parseVersion(version); err != nil {
			return nil, err
		}
	}
	b, err := s.store.GetBackupVersion(ctx, userID, n)
	if errors.Is(err, store.ErrNotFound) {
		if version == "" {
			return nil, mxerr.NotFound("No current backup version")
		}
		return nil, mxerr.NotFound("Unknown backup version")
	}
	if err != nil {
		return nil, err
	}
	return &BackupVersion{Algorithm: b.Algorithm, AuthData: json.RawMessage(b.AuthData), Count: b.Count,
		Etag: strconv.FormatInt(b.Etag, 10), Version: strconv.FormatInt(b.Version, 10)}, nil
}

// UpdateBackup replaces a version's auth_data; the algorithm cannot
// change, and a version in the body must be the one in the path.
func (s *Service) UpdateBackup(ctx context.Context, userID, version, algorithm, bodyVersion string, authData json.RawMessage) error {
	b, err := s.Backup(ctx, userID, version)
	if err != nil {
		return err
	}
	if bodyVersion != "" && bodyVersion != b.Version {
		return mxerr.InvalidParam("Version in body does not match")
	}
	if algorithm != b.Algorithm {
		return mxerr.InvalidParam("Algorithm does not match")
	}
	if !isObject(authData) {
		return mxerr.MissingParam("auth_data must be an object")
	}
	n, _ := strconv.ParseInt(b.Version, 10, 64)
	return s.store.UpdateBackupAuthData(ctx, userID, n, string(authData))
}

// DeleteBackup deletes a version and its keys.
func (s *Service) DeleteBackup(ctx context.Context, userID, version string) error {
	n, err := parseVersion(version)
	if err != nil {
		return err
	}
	if err := s.store.DeleteBackupVersion(ctx, userID, n); errors.Is(err, store.ErrNotFound) {
		return mxerr.NotFound("Unknown backup version")
	} else if err != nil {
		return err
	}
	return nil
}

// writableVersion checks that version is the current one: writes to any
// other fail with M_WRONG_ROOM_KEYS_VERSION naming the current version,
// so that a client backing up to an old version learns of the new one.
func (s *Service) writableVersion(ctx context.Context, userID, version string) (int64, error) {
	if version == "" {
		return 0, mxerr.MissingParam("Missing version")
	}
	cur, err := s.store.GetBackupVersion(ctx, userID, 0)
	if errors.Is(err, store.ErrNotFound) {
		return 0, mxerr.NotFound("No current backup version")
	}
	if err != nil {
		return 0, err
	}
	if strconv.FormatInt(cur.Version, 10) != version {
		return 0, (&mxerr.Error{Status: http.StatusForbidden, Code: "M_WRONG_ROOM_KEYS_VERSION",
			Message: "Wrong backup version"}).With("current_version", strconv.FormatInt(cur.Version, 10))
	}
	return cur.Version, nil
}

// readableVersion is the number of an existing backup version the
// session endpoints name (any version, not only the current one).
func (s *Service) readableVersion(ctx context.Context, userID, version string) (int64, error) {
	if version == "" {
		return 0, mxerr.MissingParam("Missing version")
	}
	b, err := s.Backup(ctx, userID, version)
	if err != nil {
		return 0, err
	}
	n, _ := strconv.ParseInt(b.Version, 10, 64)
	return n, nil
}

// better is the spec's rule for whether an uploaded session replaces the
// stored one: a verified key beats an unverified one, then a lower
// first_message_index wins, then a lower forwarded_count; otherwise the
// stored one stays.
func better(old, new store.BackupSession) bool {
	if old.IsVerified != new.IsVerified {
		return new.IsVerified
	}
	if old.FirstMessageIndex != new.FirstMessageIndex {
		return new.FirstMessageIndex < old.FirstMessageIndex
	}
	return new.ForwardedCount < old.ForwardedCount
}

// PutBackupKeys stores sessions (room ID to session ID to data) in the
// current version.
func (s *Service) PutBackupKeys(ctx context.Context, userID, version string, rooms map[string]map[string]SessionData) (*BackupState, error) {
	n, err := s.writableVersion(ctx, userID, version)
	if err != nil {
		return nil, err
	}
	var sessions []store.BackupSession
	for room, ss := range rooms {
		for id, d := range ss {
			if !isObject(d.SessionData) {
				return nil, mxerr.BadJSON("session_data of %s must be an object", id)
			}
			sessions = append(sessions, store.BackupSession{RoomID: room, SessionID: id, FirstMessageIndex: d.FirstMessageIndex,
				ForwardedCount: d.ForwardedCount, IsVerified: d.IsVerified, SessionData: string(d.SessionData)})
		}
	}
	if err := s.store.PutBackupSessions(ctx, userID, n, sessions, better); err != nil {
		return nil, err
	}
	return s.backupState(ctx, userID, n)
}

func (s *Service) backupState(ctx context.Context, userID string, n int64) (*BackupState, error) {
	b, err := s.store.GetBackupVersion(ctx, userID, n)
	if err != nil {
		return nil, err
	}
	return &BackupState{Etag: strconv.FormatInt(b.Etag, 10), Count: b.Count}, nil
}

// BackupKeys reads sessions of a version: all, one room's or one session
// (roomID and sessionID narrowing).
func (s *Service) BackupKeys(ctx context.Context, userID, version, roomID, sessionID string) (map[string]RoomSessions, error) {
	n, err := s.readableVersion(ctx, userID, version)
	if err != nil {
		return nil, err
	}
	rows, err := s.store.BackupSessions(ctx, userID, n, roomID, sessionID)
	if err != nil {
		return nil, err
	}
	out := map[string]RoomSessions{}
	for _, r := range rows {
		rs, ok := out[r.RoomID]
		if !ok {
			rs = RoomSessions{Sessions: map[string]SessionData{}}
			out[r.RoomID] = rs
		}
		rs.Sessions[r.SessionID] = SessionData{FirstMessageIndex: r.FirstMessageIndex, ForwardedCount: r.ForwardedCount,
			IsVerified: r.IsVerified, SessionData: json.RawMessage(r.SessionData)}
	}
	return out, nil
}

// DeleteBackupKeys deletes sessions of a version (all, one room's or
// one session).
func (s *Service) DeleteBackupKeys(ctx context.Context, userID, version, roomID, sessionID string) (*BackupState, error) {
	n, err := s.readableVersion(ctx, userID, version)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteBackupSessions(ctx, userID, n, roomID, sessionID); err != nil {
		return nil, err
	}
	return s.backupState(ctx, userID, n)
}
