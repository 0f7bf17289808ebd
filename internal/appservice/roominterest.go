package appservice

import "context"

// interestStore is what deciding a service's interest in a room reads.
type interestStore interface {
	JoinedMembers(ctx context.Context, roomID string) ([]string, error)
	RoomAliases(ctx context.Context, roomID string) ([]string, error)
}

// interest answers whether one service cares about rooms and users,
// remembering the answers for the life of one transaction.
type interest struct {
	st interface {
		interestStore
		sharingStore
	}
	registry *Registry
	reg      *Registration
	rooms    map[string]bool
	users    map[string]bool
}

func newInterest(st EphemeralStore, registry *Registry, reg *Registration) *interest {
	return &interest{st: st, registry: registry, reg: reg, rooms: map[string]bool{}, users: map[string]bool{}}
}

// room: the room is in the service's room namespaces, has one of its
// aliases or a member of its user namespaces (spec "Application Service
// API", Synapse's is_interested_in_room).
func (in *interest) room(ctx context.Context, roomID string) (bool, error) {
	if v, ok := in.rooms[roomID]; ok {
		return v, nil
	}
	v := in.reg.InRooms(roomID)
	var err error
	if !v {
		v, err = roomInterest(ctx, in.st, in.registry, in.reg, roomID)
		if err != nil {
			return false, err
		}
	}
	in.rooms[roomID] = v
	return v, nil
}

// sharingStore lists the users sharing a room with a user.
type sharingStore interface {
	UsersSharingRooms(ctx context.Context, userID string) ([]string, error)
}

// user: the user is the service's, or shares a joined room with one of
// its users (Synapse's is_interested_in_presence).
func (in *interest) user(ctx context.Context, userID string) (bool, error) {
	if v, ok := in.users[userID]; ok {
		return v, nil
	}
	v := in.reg.OwnsUser(userID, in.registry.ServerName)
	if !v {
		others, err := in.st.UsersSharingRooms(ctx, userID)
		if err != nil {
			return false, err
		}
		for _, o := range others {
			if in.reg.OwnsUser(o, in.registry.ServerName) {
				v = true
				break
			}
		}
	}
	in.users[userID] = v
	return v, nil
}

// roomInterest says whether the room has one of the service's aliases or
// one of its users as a member.
func roomInterest(ctx context.Context, st interestStore, registry *Registry, reg *Registration, roomID string) (bool, error) {
	if len(reg.Aliases) > 0 {
		aliases, err := st.RoomAliases(ctx, roomID)
		if err != nil {
			return false, err
		}
		for _, a := range aliases {
			if reg.InAliases(a) {
				return true, nil
			}
		}
	}
	members, err := st.JoinedMembers(ctx, roomID)
	if err != nil {
		return false, err
	}
	for _, m := range members {
		if reg.OwnsUser(m, registry.ServerName) {
			return true, nil
		}
	}
	return false, nil
}
