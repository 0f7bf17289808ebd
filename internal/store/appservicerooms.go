package store

import "context"

// SetAppServiceRoomListed publishes roomID in the directory of an
// application service's network, or withdraws it.
func (db *DB) SetAppServiceRoomListed(ctx context.Context, asID, networkID, roomID string, listed bool) error {
	if listed {
		_, err := db.w().exec(ctx, `INSERT INTO appservice_room_list (as_id, network_id, room_id) VALUES ($1, $2, $3)
			ON CONFLICT (as_id, network_id, room_id) DO NOTHING`, asID, networkID, roomID)
		return err
	}
	_, err := db.w().exec(ctx, `DELETE FROM appservice_room_list WHERE as_id = $1 AND network_id = $2 AND room_id = $3`,
		asID, networkID, roomID)
	return err
}

// DirectoryScope chooses which published rooms a directory lists, as
// Synapse's network_tuple: the zero value is the server's own directory
// (rooms published with /directory/list/room); AllNetworks adds every
// application service's; ASID and NetworkID select one service
// network's alone.
type DirectoryScope struct {
	AllNetworks     bool
	ASID, NetworkID string
}

const publishedOrder = ` GROUP BY r.room_id ORDER BY COUNT(cs.state_key) DESC, r.room_id`

// PublishedRoomsIn lists the published rooms of a scope, the most
// joined members first, then in room ID order.
func (db *DB) PublishedRoomsIn(ctx context.Context, scope DirectoryScope) ([]PublishedRoom, error) {
	from := `SELECT r.room_id, COUNT(cs.state_key) FROM rooms r
		LEFT JOIN current_state cs ON cs.room_id = r.room_id AND cs.type = 'm.room.member' AND cs.membership = 'join'`
	var args []any
	switch {
	case scope.AllNetworks:
		from += ` WHERE r.published = TRUE OR EXISTS (SELECT 1 FROM appservice_room_list l WHERE l.room_id = r.room_id)`
	case scope.ASID != "":
		from += ` WHERE EXISTS (SELECT 1 FROM appservice_room_list l WHERE l.room_id = r.room_id AND l.as_id = $1 AND l.network_id = $2)`
		args = append(args, scope.ASID, scope.NetworkID)
	default:
		from += ` WHERE r.published = TRUE`
	}
	rows, err := db.r().query(ctx, from+publishedOrder, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []PublishedRoom
	for rows.Next() {
		var p PublishedRoom
		if err := rows.Scan(&p.RoomID, &p.Joined); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}
