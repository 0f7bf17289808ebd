package store

import "context"

// DirectoryMember is a joined member of a room, with the content of
// their membership event (display name and avatar as the room knows them).
type DirectoryMember struct {
	RoomID string
	UserID string
	JSON   string
}

// DirectoryLocalUser is a local account with its profile's display name
// and avatar (raw JSON values, "" when unset).
type DirectoryLocalUser struct {
	UserID      string
	DisplayName string
	AvatarURL   string
}

// PublicRoomsByJoinRule lists the rooms whose current join rule may be
// public: the LIKE only narrows the rows read, the caller checks the
// event itself. Returns room ID and join rules event JSON pairs.
func (db *DB) PublicRoomsByJoinRule(ctx context.Context) ([][2]string, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) ([2]string, error) {
		var p [2]string
		err := scan(&p[0], &p[1])
		return p, err
	}, `SELECT cs.room_id, e.json FROM current_state cs JOIN events e ON e.event_nid = cs.event_nid
		WHERE cs.type = 'm.room.join_rules' AND cs.state_key = '' AND e.json LIKE '%"public"%'`)
}

// JoinedMembersOf lists the joined members of the rooms, with their
// membership events.
func (db *DB) JoinedMembersOf(ctx context.Context, roomIDs []string) ([]DirectoryMember, error) {
	return inChunks(roomIDs, func(chunk []string) ([]DirectoryMember, error) {
		args := inArgs(chunk)
		return collect(ctx, db.r(), func(scan func(...any) error) (DirectoryMember, error) {
			var m DirectoryMember
			err := scan(&m.RoomID, &m.UserID, &m.JSON)
			return m, err
		}, `SELECT cs.room_id, cs.state_key, e.json FROM current_state cs JOIN events e ON e.event_nid = cs.event_nid
			WHERE cs.type = 'm.room.member' AND cs.membership = 'join' AND cs.room_id IN (`+placeholders(len(args), 1)+`)`, args...)
	})
}

// LocalDirectoryUsers lists the active, non-guest local accounts with
// their display names and avatars.
func (db *DB) LocalDirectoryUsers(ctx context.Context) ([]DirectoryLocalUser, error) {
	return collect(ctx, db.r(), func(scan func(...any) error) (DirectoryLocalUser, error) {
		var u DirectoryLocalUser
		var dn, av *string
		err := scan(&u.UserID, &dn, &av)
		if dn != nil {
			u.DisplayName = *dn
		}
		if av != nil {
			u.AvatarURL = *av
		}
		return u, err
	}, `SELECT u.user_id, d.value, a.value FROM users u
		LEFT JOIN profile_fields d ON d.localpart = u.localpart AND d.field = 'displayname'
		LEFT JOIN profile_fields a ON a.localpart = u.localpart AND a.field = 'avatar_url'
		WHERE u.deactivated = FALSE AND u.is_guest = FALSE`)
}
