package remote

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"
)

// DeviceListKeys is what JoinDeviceLists asks of the keys service.
type DeviceListKeys interface {
	UserDevices(ctx context.Context, userID string) (map[string]any, error)
	TrackRemoteUser(ctx context.Context, userID string) error
}

// JoinDeviceLists keeps device lists flowing when servers newly share a
// room, as Synapse does on membership changes: other servers hear of a
// local user's devices only while they share a room with them, and each
// keeps its cache by the updates that follow (server-server spec "Device
// Management"). So
//   - a local user's join sends their device list to the room's servers
//     that shared no other room with them;
//   - a remote user's join from a server new to the room sends the
//     device lists of the room's local members to that server;
//   - a remote user's join starts tracking their device list, and so
//     does a local user's join for the remote members of a small room:
//     it is fetched in the background (keys.Service.TrackRemoteUser), so
//     that local users encrypting to them do not wait for their server.
//
// A device list is sent as one m.device_list_update per device, at the
// user's current stream_id with prev_id naming it: a server whose cache
// is there already changes nothing, any other refetches the list.
//
// It listens on the room engine's bus; the work runs in Run, off the
// engine's write path.
type JoinDeviceLists struct {
	*joinWorker
	f *Service
	k DeviceListKeys
	// completed are the rooms whose partial state completed
	// (partialdevices.go).
	completed chan string
}

// JoinDeviceLists makes the listener; nil without federation.
func (f *Service) JoinDeviceLists(k DeviceListKeys) *JoinDeviceLists {
	if f.d.Sender == nil || f.d.Bus == nil || k == nil {
		return nil
	}
	j := &JoinDeviceLists{f: f, k: k}
	j.joinWorker = newJoinWorker(f.d.Bus, "federation.join-device-lists", "device lists", f.d.Log, j.joined)
	j.subscribeCompleted(f.d.Bus)
	return j
}

func (j *JoinDeviceLists) joined(ctx context.Context, roomID, userID string) error {
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		return nil
	}
	server := string(uid.Domain())
	if server == j.f.d.ServerName {
		return j.localJoined(ctx, roomID, userID)
	}
	return j.remoteJoined(ctx, roomID, userID, server)
}

// maxTrackedOnJoin bounds the remote members whose device lists a local
// user's join starts tracking: a small room's (direct chats and small
// groups, where encryption is the rule); the members of a bigger one are
// fetched when a client asks.
const maxTrackedOnJoin = 100

// localJoined sends a local user's device list to the room's servers
// that share no other room with them, and, in a small room, starts
// tracking the remote members' lists. Their servers send theirs too (the
// room is new to this server), but their updates may arrive before this
// server has stored the room, and are then dropped as being about users
// it shares no room with.
func (j *JoinDeviceLists) localJoined(ctx context.Context, roomID, userID string) error {
	members, err := j.f.d.Store.JoinedMembers(ctx, roomID)
	if err != nil {
		return err
	}
	local := ":" + j.f.d.ServerName
	var remote []string
	for _, m := range members {
		if !strings.HasSuffix(m, local) {
			remote = append(remote, m)
		}
	}
	if len(remote) <= maxTrackedOnJoin {
		for _, m := range remote {
			if err := j.k.TrackRemoteUser(ctx, m); err != nil {
				return err
			}
		}
	}
	// While the room's state is partial, also the servers the
	// resident named (servers_in_room).
	servers, err := j.f.joinedServers(ctx, roomID)
	if err != nil {
		return err
	}
	known, err := j.serversSharingOtherRooms(ctx, userID, roomID)
	if err != nil {
		return err
	}
	var dests []string
	for _, s := range servers {
		if s != j.f.d.ServerName && !known[s] {
			dests = append(dests, s)
		}
	}
	return j.sendDeviceList(ctx, userID, dests)
}

// remoteJoined tracks the joiner's device list and, when their server
// is new to the room, sends it the local members' device lists.
func (j *JoinDeviceLists) remoteJoined(ctx context.Context, roomID, userID, server string) error {
	members, err := j.f.d.Store.JoinedMembers(ctx, roomID)
	if err != nil {
		return err
	}
	suffix := ":" + server
	local := ":" + j.f.d.ServerName
	var locals []string
	newServer := true
	for _, m := range members {
		switch {
		case strings.HasSuffix(m, local):
			locals = append(locals, m)
		case m != userID && strings.HasSuffix(m, suffix):
			newServer = false
		}
	}
	if len(locals) == 0 {
		return nil // no local user to encrypt to or from them
	}
	if err := j.k.TrackRemoteUser(ctx, userID); err != nil {
		return err
	}
	if !newServer {
		return nil
	}
	if ok, err := j.f.d.Rooms.ServerAllowed(ctx, roomID, server); err != nil || !ok {
		return err
	}
	for _, m := range locals {
		if err := j.sendDeviceList(ctx, m, []string{server}); err != nil {
			return err
		}
	}
	return nil
}

// serversSharingOtherRooms lists the servers in the user's joined rooms
// other than roomID.
func (j *JoinDeviceLists) serversSharingOtherRooms(ctx context.Context, userID, roomID string) (map[string]bool, error) {
	rms, err := j.f.d.Store.MembershipsOf(ctx, userID, spec.Join)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, r := range rms {
		if r.RoomID == roomID {
			continue
		}
		servers, err := j.f.d.Store.JoinedServers(ctx, r.RoomID)
		if err != nil {
			return nil, err
		}
		for _, s := range servers {
			out[s] = true
		}
	}
	return out, nil
}

// sendDeviceList queues an m.device_list_update per device of a local
// user that has keys, to dests.
func (j *JoinDeviceLists) sendDeviceList(ctx context.Context, userID string, dests []string) error {
	if len(dests) == 0 {
		return nil
	}
	list, err := j.k.UserDevices(ctx, userID)
	if err != nil {
		return err
	}
	devices, _ := list["devices"].([]map[string]any)
	for _, d := range devices {
		raw, ok := d["keys"].(json.RawMessage)
		if !ok {
			continue // never uploaded keys: nothing to encrypt to
		}
		keys, name := splitDisplayName(raw)
		content := map[string]any{"user_id": userID, "device_id": d["device_id"], "stream_id": list["stream_id"],
			"prev_id": []any{list["stream_id"]}, "deleted": false, "keys": keys}
		if name != nil {
			content["device_display_name"] = *name
		}
		if err := j.f.d.Sender.QueueEDU(ctx, dests, "m.device_list_update", content); err != nil {
			return err
		}
	}
	return nil
}
