package keys

import (
	"context"
	"sort"

	"github.com/myelin-chat/myelin/internal/store"
)

// DeviceListChanges lists, for a user's sync or /keys/changes between
// stream positions from and to, the users whose device lists changed
// and who share a room with the user (changed: the user among them, and
// everyone newly sharing a room, whose keys the client has never
// fetched), and the users who share no room with the user any more
// after a membership change in the range (left).
func (s *Service) DeviceListChanges(ctx context.Context, userID string, from, to int64) (changed, left []string, err error) {
	if to <= from {
		return []string{}, []string{}, nil
	}
	// Every woken /sync asks, and mostly nothing changed: the cheap
	// questions first, the users sharing a room only when needed.
	var users []string
	if !s.listMarks.Unchanged("", from) {
		var err error
		if users, err = s.store.DeviceListChangedUsers(ctx, from, to); err != nil {
			return nil, nil, err
		}
	}
	var mcs []store.MemberChange
	if s.members == nil || !s.members.MembershipsUnchangedSince(from) {
		var err error
		if mcs, err = s.store.MemberChangesInUsersRooms(ctx, userID, from, to); err != nil {
			return nil, nil, err
		}
	}
	if len(users) == 0 && len(mcs) == 0 {
		return []string{}, []string{}, nil
	}
	sharingList, err := s.store.UsersSharingRooms(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	sharing := map[string]bool{userID: true}
	for _, u := range sharingList {
		sharing[u] = true
	}
	changedSet, leftSet := map[string]bool{}, map[string]bool{}
	for _, u := range users {
		if sharing[u] {
			changedSet[u] = true
		}
	}
	for _, mc := range mcs {
		if mc.UserID == userID {
			// The user joined or left a room: all its members may now
			// share, or no longer share, a room with them.
			members, err := s.store.JoinedMembers(ctx, mc.RoomID)
			if err != nil {
				return nil, nil, err
			}
			for _, m := range members {
				classify(m, sharing, changedSet, leftSet)
			}
			continue
		}
		classify(mc.UserID, sharing, changedSet, leftSet)
	}
	delete(leftSet, userID)
	return sortedKeys(changedSet), sortedKeys(leftSet), nil
}

func classify(u string, sharing, changed, left map[string]bool) {
	if sharing[u] {
		changed[u] = true
		delete(left, u)
	} else {
		left[u] = true
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// UserDevices answers federation GET /user/devices/{userId} for a local
// user: every device with its keys and display name, the position of the
// user's last device-list change and the public cross-signing keys.
func (s *Service) UserDevices(ctx context.Context, userID string) (map[string]any, error) {
	devices, err := s.store.ListDevices(ctx, localpartOf(userID))
	if err != nil {
		return nil, err
	}
	resp := newQueryResponse()
	if err := s.queryLocalUser(ctx, "", userID, nil, resp); err != nil {
		return nil, err
	}
	keys := resp.DeviceKeys[userID]
	list := []map[string]any{}
	for _, d := range devices {
		entry := map[string]any{"device_id": d.DeviceID}
		if d.DisplayName != nil {
			entry["device_display_name"] = *d.DisplayName
		}
		if k, ok := keys[d.DeviceID]; ok {
			entry["keys"] = k
		} else {
			// Devices that never uploaded keys are listed too, as Synapse
			// does; keys is required, so an empty object stands in.
			entry["keys"] = map[string]any{}
		}
		list = append(list, entry)
	}
	pos, err := s.store.LastDeviceListPos(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"user_id": userID, "stream_id": pos, "devices": list}
	if k, ok := resp.MasterKeys[userID]; ok {
		out["master_key"] = k
	}
	if k, ok := resp.SelfSigningKeys[userID]; ok {
		out["self_signing_key"] = k
	}
	return out, nil
}
