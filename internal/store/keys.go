package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Queries of end-to-end encryption (migrations/0005_keys.sql). A write
// that changes a user's device list takes the stream position pos of its
// device-list change, recorded in the same transaction; pos 0 records
// none.

// DeviceKeysRow is a local device's uploaded identity keys with the
// device's display name (nil when the device has none).
type DeviceKeysRow struct {
	DeviceID    string
	KeyJSON     string
	DisplayName *string
}

// KeyObject is a one-time or fallback key as uploaded.
type KeyObject struct {
	Algorithm string
	KeyID     string
	JSON      string
}

// ErrKeyMismatch is returned when a key ID is uploaded again with other
// content.
var ErrKeyMismatch = errors.New("store: key already uploaded with other content")

func addChange(ctx context.Context, c conn, pos int64, userID string) error {
	if pos == 0 {
		return nil
	}
	_, err := c.exec(ctx, `INSERT INTO device_list_changes (stream_pos, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`, pos, userID)
	return err
}

// AddDeviceListChange records that users' device lists changed at pos.
func (db *DB) AddDeviceListChange(ctx context.Context, pos int64, userIDs ...string) error {
	return db.tx(ctx, func(c conn) error {
		for _, u := range userIDs {
			if err := addChange(ctx, c, pos, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// LastDeviceListPos is the position of a user's latest device-list change.
func (db *DB) LastDeviceListPos(ctx context.Context, userID string) (int64, error) {
	var n sql.NullInt64
	err := db.r().queryRow(ctx, `SELECT MAX(stream_pos) FROM device_list_changes WHERE user_id = $1`, []any{userID}, &n)
	return n.Int64, err
}

// DeviceListChangedUsers lists users whose device lists changed in
// (after, upto].
func (db *DB) DeviceListChangedUsers(ctx context.Context, after, upto int64) ([]string, error) {
	return db.r().strings(ctx, `SELECT DISTINCT user_id FROM device_list_changes WHERE stream_pos > $1 AND stream_pos <= $2`, after, upto)
}

// UsersSharingRooms lists the users joined to a room the user is joined
// to, the user included.
func (db *DB) UsersSharingRooms(ctx context.Context, userID string) ([]string, error) {
	return db.r().strings(ctx, `SELECT DISTINCT b.state_key FROM current_state a
		JOIN current_state b ON b.room_id = a.room_id AND b.type = 'm.room.member' AND b.membership = 'join'
		WHERE a.type = 'm.room.member' AND a.state_key = $1 AND a.membership = 'join'`, userID)
}

// MemberChange is a membership change in the event stream.
type MemberChange struct {
	RoomID, UserID, Membership string
}

// MemberChangesInUsersRooms lists the membership changes in (after,
// upto] of the rooms the user is or was a member of.
func (db *DB) MemberChangesInUsersRooms(ctx context.Context, userID string, after, upto int64) ([]MemberChange, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (MemberChange, error) {
		var m MemberChange
		err := scan(&m.RoomID, &m.UserID, &m.Membership)
		return m, err
	}, `SELECT e.room_id, e.state_key, e.membership FROM events e
		WHERE e.type = 'm.room.member' AND e.stream_pos > $2 AND e.stream_pos <= $3 AND e.membership IS NOT NULL
		AND e.room_id IN (SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = $1)
		ORDER BY e.stream_pos`, userID, after, upto)
}

// DeviceKeys lists a user's device keys, of the given devices or all.
func (db *DB) DeviceKeys(ctx context.Context, userID, localpart string, deviceIDs []string) ([]DeviceKeysRow, error) {
	rows, err := collect(ctx, db.r(), func(scan func(...any) error) (DeviceKeysRow, error) {
		var d DeviceKeysRow
		var name sql.NullString
		err := scan(&d.DeviceID, &d.KeyJSON, &name)
		if name.Valid {
			d.DisplayName = &name.String
		}
		return d, err
	}, `SELECT k.device_id, k.key_json, d.display_name FROM e2e_device_keys k
		LEFT JOIN devices d ON d.localpart = $2 AND d.device_id = k.device_id
		WHERE k.user_id = $1 ORDER BY k.device_id`, userID, localpart)
	if err != nil || len(deviceIDs) == 0 {
		return rows, err
	}
	want := map[string]bool{}
	for _, d := range deviceIDs {
		want[d] = true
	}
	out := rows[:0]
	for _, r := range rows {
		if want[r.DeviceID] {
			out = append(out, r)
		}
	}
	return out, nil
}

// SetDeviceKeys stores a device's identity keys. When the device has
// keys already, decide says whether to replace them (or fails the
// upload); changed reports whether anything was written.
func (db *DB) SetDeviceKeys(ctx context.Context, userID, deviceID, keyJSON string, decide func(old string) (bool, error), pos int64) (changed bool, err error) {
	err = db.tx(ctx, func(c conn) error {
		var old string
		err := c.queryRow(ctx, `SELECT key_json FROM e2e_device_keys WHERE user_id = $1 AND device_id = $2`, []any{userID, deviceID}, &old)
		switch {
		case err == nil:
			replace, err := decide(old)
			if err != nil || !replace {
				return err
			}
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if _, err := c.exec(ctx, `INSERT INTO e2e_device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3)
			ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json`, userID, deviceID, keyJSON); err != nil {
			return err
		}
		changed = true
		return addChange(ctx, c, pos, userID)
	})
	return changed, err
}

// AddOneTimeKeys stores one-time keys. A key ID already stored with the
// same content is skipped; with other content the whole upload fails
// with ErrKeyMismatch (Synapse's "One time key ... already exists").
// The upload gets the next upload number of the device, which orders
// claims (ClaimOneTimeKey); two uploads racing on PostgreSQL may share
// one, and then key_id orders their keys.
func (db *DB) AddOneTimeKeys(ctx context.Context, userID, deviceID string, keys []KeyObject, equal func(a, b string) bool) error {
	return db.tx(ctx, func(c conn) error {
		var last sql.NullInt64
		if err := c.queryRow(ctx, `SELECT MAX(upload_seq) FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2`,
			[]any{userID, deviceID}, &last); err != nil {
			return err
		}
		seq := last.Int64 + 1
		for _, k := range keys {
			var old string
			err := c.queryRow(ctx, `SELECT key_json FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4`,
				[]any{userID, deviceID, k.Algorithm, k.KeyID}, &old)
			if err == nil {
				if equal(old, k.JSON) {
					continue
				}
				return fmt.Errorf("%w: %s:%s", ErrKeyMismatch, k.Algorithm, k.KeyID)
			}
			if !errors.Is(err, ErrNotFound) {
				return err
			}
			if _, err := c.exec(ctx, `INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json, upload_seq) VALUES ($1, $2, $3, $4, $5, $6)`,
				userID, deviceID, k.Algorithm, k.KeyID, k.JSON, seq); err != nil {
				return err
			}
		}
		return nil
	})
}

// OneTimeKeyCounts counts a device's unclaimed one-time keys by algorithm.
func (db *DB) OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	type count struct {
		alg string
		n   int
	}
	rows, err := collect(ctx, db.r(), func(scan func(...any) error) (count, error) {
		var c count
		err := scan(&c.alg, &c.n)
		return c, err
	}, `SELECT algorithm, COUNT(*) FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm`, userID, deviceID)
	out := map[string]int{}
	for _, r := range rows {
		out[r.alg] = r.n
	}
	return out, err
}

// ClaimOneTimeKey takes a device's oldest one-time key of an algorithm
// (first uploaded, spec v1.13), deleting it, or else its fallback key of
// that algorithm, marking it used. ErrNotFound if the device has neither.
func (db *DB) ClaimOneTimeKey(ctx context.Context, userID, deviceID, algorithm string) (key KeyObject, fallback bool, err error) {
	key.Algorithm = algorithm
	err = db.tx(ctx, func(c conn) error {
		// A concurrent claim (PostgreSQL runs them side by side) may
		// delete the key we picked first: its DELETE then removes nothing
		// and we pick again, so no key is ever handed out twice.
		for {
			err := c.queryRow(ctx, `SELECT key_id, key_json FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3
				ORDER BY upload_seq, key_id LIMIT 1`, []any{userID, deviceID, algorithm}, &key.KeyID, &key.JSON)
			if errors.Is(err, ErrNotFound) {
				break
			}
			if err != nil {
				return err
			}
			err = affected(c.exec(ctx, `DELETE FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3 AND key_id = $4`,
				userID, deviceID, algorithm, key.KeyID))
			if !errors.Is(err, ErrNotFound) {
				return err
			}
		}
		fallback = true
		if err := c.queryRow(ctx, `SELECT key_id, key_json FROM e2e_fallback_keys WHERE user_id = $1 AND device_id = $2 AND algorithm = $3`,
			[]any{userID, deviceID, algorithm}, &key.KeyID, &key.JSON); err != nil {
			return err
		}
		_, err := c.exec(ctx, `UPDATE e2e_fallback_keys SET used = TRUE WHERE user_id = $1 AND device_id = $2 AND algorithm = $3`,
			userID, deviceID, algorithm)
		return err
	})
	return key, fallback, err
}

// SetFallbackKeys replaces a device's fallback key per algorithm. A new
// key starts unused; re-uploading the same key keeps its used flag.
func (db *DB) SetFallbackKeys(ctx context.Context, userID, deviceID string, keys []KeyObject) error {
	return db.tx(ctx, func(c conn) error {
		for _, k := range keys {
			if _, err := c.exec(ctx, `INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)
				VALUES ($1, $2, $3, $4, $5, FALSE)
				ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, key_json = excluded.key_json,
					used = CASE WHEN e2e_fallback_keys.key_json = excluded.key_json THEN e2e_fallback_keys.used ELSE FALSE END`,
				userID, deviceID, k.Algorithm, k.KeyID, k.JSON); err != nil {
				return err
			}
		}
		return nil
	})
}

// UnusedFallbackKeyTypes lists the algorithms of a device's unused
// fallback keys.
func (db *DB) UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error) {
	return db.r().strings(ctx, `SELECT algorithm FROM e2e_fallback_keys WHERE user_id = $1 AND device_id = $2 AND used = FALSE ORDER BY algorithm`,
		userID, deviceID)
}

// DeleteDeviceE2E removes everything end-to-end about devices of a user
// (all of them when deviceIDs is nil): keys, signatures of them and
// waiting to-device messages, recording a device-list change at pos.
// Their sliding sync connections go too (deleteSlidingConnections), as
// Synapse deletes them with the device: a device created later with the
// same ID must not resume them.
func (db *DB) DeleteDeviceE2E(ctx context.Context, userID string, deviceIDs []string, pos int64) error {
	return db.tx(ctx, func(c conn) error {
		if err := deleteSlidingConnections(ctx, c, userID, deviceIDs); err != nil {
			return err
		}
		tables := []string{"e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys", "to_device_inbox", "to_device_txns"}
		for _, t := range tables {
			if deviceIDs == nil {
				if _, err := c.exec(ctx, `DELETE FROM `+t+` WHERE user_id = $1`, userID); err != nil {
					return err
				}
				continue
			}
			for _, d := range deviceIDs {
				if _, err := c.exec(ctx, `DELETE FROM `+t+` WHERE user_id = $1 AND device_id = $2`, userID, d); err != nil {
					return err
				}
			}
		}
		for _, d := range deviceIDs {
			if _, err := c.exec(ctx, `DELETE FROM e2e_signatures WHERE target_user = $1 AND target_key = $2`, userID, d); err != nil {
				return err
			}
		}
		return addChange(ctx, c, pos, userID)
	})
}

// CrossSigningKeys returns a local user's cross-signing keys by type.
func (db *DB) CrossSigningKeys(ctx context.Context, userID string) (map[string]string, error) {
	type row struct{ typ, js string }
	rows, err := collect(ctx, db.r(), func(scan func(...any) error) (row, error) {
		var r row
		err := scan(&r.typ, &r.js)
		return r, err
	}, `SELECT key_type, key_json FROM e2e_cross_signing_keys WHERE user_id = $1`, userID)
	out := map[string]string{}
	for _, r := range rows {
		out[r.typ] = r.js
	}
	return out, err
}

// SetCrossSigningKeys stores cross-signing keys by type.
func (db *DB) SetCrossSigningKeys(ctx context.Context, userID string, keys map[string]string, pos int64) error {
	return db.tx(ctx, func(c conn) error {
		for typ, js := range keys {
			if _, err := c.exec(ctx, `INSERT INTO e2e_cross_signing_keys (user_id, key_type, key_json) VALUES ($1, $2, $3)
				ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = excluded.key_json`, userID, typ, js); err != nil {
				return err
			}
		}
		return addChange(ctx, c, pos, userID)
	})
}

// Signature is one signature uploaded with /keys/signatures/upload.
type Signature struct {
	TargetUser, TargetKey, SignerUser, SignerKey, Signature string
}

// AddSignatures stores signatures; each target user's device list
// changes at pos.
func (db *DB) AddSignatures(ctx context.Context, sigs []Signature, pos int64) error {
	return db.tx(ctx, func(c conn) error {
		for _, s := range sigs {
			if _, err := c.exec(ctx, `INSERT INTO e2e_signatures (target_user, target_key, signer_user, signer_key, signature)
				VALUES ($1, $2, $3, $4, $5) ON CONFLICT (target_user, target_key, signer_user, signer_key) DO UPDATE SET signature = excluded.signature`,
				s.TargetUser, s.TargetKey, s.SignerUser, s.SignerKey, s.Signature); err != nil {
				return err
			}
			if err := addChange(ctx, c, pos, s.TargetUser); err != nil {
				return err
			}
		}
		return nil
	})
}

// SignaturesOf lists the uploaded signatures of a user's keys.
func (db *DB) SignaturesOf(ctx context.Context, targetUser string) ([]Signature, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (Signature, error) {
		var s Signature
		err := scan(&s.TargetUser, &s.TargetKey, &s.SignerUser, &s.SignerKey, &s.Signature)
		return s, err
	}, `SELECT target_user, target_key, signer_user, signer_key, signature FROM e2e_signatures WHERE target_user = $1`, targetUser)
}

// RemoteDeviceList is a cached answer about another server's user.
type RemoteDeviceList struct {
	Devices   string // JSON object: device ID to device keys
	MasterKey string // empty when none
	SelfKey   string
	Stale     bool
	FetchedTS int64
	// StreamID is the owner's stream_id the list is at (0: not known).
	StreamID int64
}

// RemoteDevices returns the cached device list of a remote user.
func (db *DB) RemoteDevices(ctx context.Context, userID string) (RemoteDeviceList, error) {
	var l RemoteDeviceList
	var master, self sql.NullString
	err := db.r().queryRow(ctx, `SELECT devices, master_key, self_key, stale, fetched_ts, stream_id FROM remote_device_lists WHERE user_id = $1`,
		[]any{userID}, &l.Devices, &master, &self, &l.Stale, &l.FetchedTS, &l.StreamID)
	l.MasterKey, l.SelfKey = master.String, self.String
	return l, err
}

// StoreRemoteDevices caches a remote user's device list as fresh,
// recording a device-list change at pos (none when 0).
func (db *DB) StoreRemoteDevices(ctx context.Context, userID string, l RemoteDeviceList, pos int64) error {
	return db.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `INSERT INTO remote_device_lists (user_id, devices, master_key, self_key, stale, fetched_ts, stream_id)
		VALUES ($1, $2, $3, $4, FALSE, $5, $6)
		ON CONFLICT (user_id) DO UPDATE SET devices = excluded.devices, master_key = excluded.master_key,
			self_key = excluded.self_key, stale = FALSE, fetched_ts = excluded.fetched_ts, stream_id = excluded.stream_id`,
			userID, l.Devices, nullIfEmpty(l.MasterKey), nullIfEmpty(l.SelfKey), l.FetchedTS, l.StreamID); err != nil {
			return err
		}
		return addChange(ctx, c, pos, userID)
	})
}

// MarkRemoteDevicesStale makes the next query of a remote user's
// device list ask their server again, recording a change at pos.
func (db *DB) MarkRemoteDevicesStale(ctx context.Context, userID string, pos int64) error {
	return db.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `UPDATE remote_device_lists SET stale = TRUE WHERE user_id = $1`, userID); err != nil {
			return err
		}
		return addChange(ctx, c, pos, userID)
	})
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ToDeviceMessage is one message in a device's to-device inbox.
type ToDeviceMessage struct {
	ID       int64
	UserID   string
	DeviceID string
	Sender   string
	Type     string
	Content  string
}

// QueueToDevice stores to-device messages. When txnID is set it is
// recorded for the sending device and event type (the request path) first,
// and a transaction already recorded queues nothing and reports duplicate.
func (db *DB) QueueToDevice(ctx context.Context, sender, senderDevice, eventType, txnID string, ts int64, msgs []ToDeviceMessage) (duplicate bool, err error) {
	err = db.tx(ctx, func(c conn) error {
		if txnID != "" {
			// ON CONFLICT rather than catching the error: PostgreSQL
			// aborts a transaction at its first failed statement.
			err := affected(c.exec(ctx, `INSERT INTO to_device_txns (user_id, device_id, event_type, txn_id, ts) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (user_id, device_id, event_type, txn_id) DO NOTHING`, sender, senderDevice, eventType, txnID, ts))
			if errors.Is(err, ErrNotFound) {
				duplicate = true
				return nil
			}
			if err != nil {
				return err
			}
		}
		for _, m := range msgs {
			if _, err := c.exec(ctx, `INSERT INTO to_device_inbox (user_id, device_id, sender, type, content) VALUES ($1, $2, $3, $4, $5)`,
				m.UserID, m.DeviceID, m.Sender, m.Type, m.Content); err != nil {
				return err
			}
		}
		return nil
	})
	return duplicate, err
}

// ToDeviceMessages lists up to limit messages of a device's inbox after
// the message ID after, in order.
func (db *DB) ToDeviceMessages(ctx context.Context, userID, deviceID string, after int64, limit int) ([]ToDeviceMessage, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (ToDeviceMessage, error) {
		var m ToDeviceMessage
		err := scan(&m.ID, &m.UserID, &m.DeviceID, &m.Sender, &m.Type, &m.Content)
		return m, err
	}, `SELECT message_id, user_id, device_id, sender, type, content FROM to_device_inbox
		WHERE user_id = $1 AND device_id = $2 AND message_id > $3 ORDER BY message_id LIMIT $4`, userID, deviceID, after, limit)
}

// DeleteToDeviceMessages removes a device's messages up to and
// including message ID upTo.
func (db *DB) DeleteToDeviceMessages(ctx context.Context, userID, deviceID string, upTo int64) error {
	_, err := db.w().exec(ctx, `DELETE FROM to_device_inbox WHERE user_id = $1 AND device_id = $2 AND message_id <= $3`, userID, deviceID, upTo)
	return err
}

// BackupVersion is a key backup version's metadata.
type BackupVersion struct {
	Version   int64
	Algorithm string
	AuthData  string
	Etag      int64
	Count     int64
}

// BackupSession is one backed-up megolm session.
type BackupSession struct {
	RoomID            string
	SessionID         string
	FirstMessageIndex int64
	ForwardedCount    int64
	IsVerified        bool
	SessionData       string
}

// CreateBackupVersion adds a backup version, numbered one above every
// earlier one (deleted ones included, so a number is never reused).
func (db *DB) CreateBackupVersion(ctx context.Context, userID, algorithm, authData string) (int64, error) {
	var v int64
	err := db.tx(ctx, func(c conn) error {
		var max sql.NullInt64
		if err := c.queryRow(ctx, `SELECT MAX(version) FROM key_backup_versions WHERE user_id = $1`, []any{userID}, &max); err != nil {
			return err
		}
		v = max.Int64 + 1
		_, err := c.exec(ctx, `INSERT INTO key_backup_versions (user_id, version, algorithm, auth_data) VALUES ($1, $2, $3, $4)`,
			userID, v, algorithm, authData)
		return err
	})
	return v, err
}

// GetBackupVersion loads a live backup version (the latest when version
// is 0) with its session count; ErrNotFound if there is none.
func (db *DB) GetBackupVersion(ctx context.Context, userID string, version int64) (BackupVersion, error) {
	var b BackupVersion
	q := `SELECT version, algorithm, auth_data, etag FROM key_backup_versions WHERE user_id = $1 AND deleted = FALSE AND version = $2`
	args := []any{userID, version}
	if version == 0 {
		q = `SELECT version, algorithm, auth_data, etag FROM key_backup_versions WHERE user_id = $1 AND deleted = FALSE ORDER BY version DESC LIMIT 1`
		args = args[:1]
	}
	c := db.r()
	if err := c.queryRow(ctx, q, args, &b.Version, &b.Algorithm, &b.AuthData, &b.Etag); err != nil {
		return b, err
	}
	err := c.queryRow(ctx, `SELECT COUNT(*) FROM key_backup_sessions WHERE user_id = $1 AND version = $2`, []any{userID, b.Version}, &b.Count)
	return b, err
}

// UpdateBackupAuthData replaces a live version's auth_data.
func (db *DB) UpdateBackupAuthData(ctx context.Context, userID string, version int64, authData string) error {
	return affected(db.w().exec(ctx, `UPDATE key_backup_versions SET auth_data = $3 WHERE user_id = $1 AND version = $2 AND deleted = FALSE`,
		userID, version, authData))
}

// DeleteBackupVersion deletes a version and its sessions.
func (db *DB) DeleteBackupVersion(ctx context.Context, userID string, version int64) error {
	return db.tx(ctx, func(c conn) error {
		if err := affected(c.exec(ctx, `UPDATE key_backup_versions SET deleted = TRUE WHERE user_id = $1 AND version = $2 AND deleted = FALSE`,
			userID, version)); err != nil {
			return err
		}
		_, err := c.exec(ctx, `DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2`, userID, version)
		return err
	})
}

// BackupSessions lists a version's sessions, of one room and one session
// when roomID and sessionID are set.
func (db *DB) BackupSessions(ctx context.Context, userID string, version int64, roomID, sessionID string) ([]BackupSession, error) {
	return collect(ctx, db.r(), scanBackupSession, `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
		FROM key_backup_sessions WHERE user_id = $1 AND version = $2 AND ($3 = '' OR room_id = $3) AND ($4 = '' OR session_id = $4)
		ORDER BY room_id, session_id`, userID, version, roomID, sessionID)
}

func scanBackupSession(scan func(...any) error) (BackupSession, error) {
	var s BackupSession
	err := scan(&s.RoomID, &s.SessionID, &s.FirstMessageIndex, &s.ForwardedCount, &s.IsVerified, &s.SessionData)
	return s, err
}

// PutBackupSessions stores sessions in a version, each replacing the
// stored one only when better says so, and bumps the version's etag
// when anything changed.
func (db *DB) PutBackupSessions(ctx context.Context, userID string, version int64, sessions []BackupSession, better func(old, new BackupSession) bool) error {
	return db.tx(ctx, func(c conn) error {
		changed := false
		for _, s := range sessions {
			rows, err := collect(ctx, c, scanBackupSession, `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
				FROM key_backup_sessions WHERE user_id = $1 AND version = $2 AND room_id = $3 AND session_id = $4`, userID, version, s.RoomID, s.SessionID)
			if err != nil {
				return err
			}
			if len(rows) > 0 && !better(rows[0], s) {
				continue
			}
			if _, err := c.exec(ctx, `INSERT INTO key_backup_sessions (user_id, version, room_id, session_id, first_message_index, forwarded_count, is_verified, session_data)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
				ON CONFLICT (user_id, version, room_id, session_id) DO UPDATE SET first_message_index = excluded.first_message_index,
					forwarded_count = excluded.forwarded_count, is_verified = excluded.is_verified, session_data = excluded.session_data`,
				userID, version, s.RoomID, s.SessionID, s.FirstMessageIndex, s.ForwardedCount, s.IsVerified, s.SessionData); err != nil {
				return err
			}
			changed = true
		}
		if !changed {
			return nil
		}
		_, err := c.exec(ctx, `UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`, userID, version)
		return err
	})
}

// DeleteBackupSessions deletes a version's sessions (all, one room's or
// one session) and bumps its etag.
func (db *DB) DeleteBackupSessions(ctx context.Context, userID string, version int64, roomID, sessionID string) error {
	return db.tx(ctx, func(c conn) error {
		if _, err := c.exec(ctx, `DELETE FROM key_backup_sessions WHERE user_id = $1 AND version = $2 AND ($3 = '' OR room_id = $3) AND ($4 = '' OR session_id = $4)`,
			userID, version, roomID, sessionID); err != nil {
			return err
		}
		_, err := c.exec(ctx, `UPDATE key_backup_versions SET etag = etag + 1 WHERE user_id = $1 AND version = $2`, userID, version)
		return err
	})
}
