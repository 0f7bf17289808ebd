package keys

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Other servers' users' device lists (server-server spec "Device
// Management"). A list is cached whole. While a local user shares a room
// with its owner, the owner's server sends an m.device_list_update for
// every change, chained by stream_id and prev_id: an update whose
// prev_id names the stream_id the cached list is at is applied in place,
// so local users' key queries never wait for the other server; any
// other update (a gap, a list never fetched with /user/devices) refetches
// the list in the background with /user/devices, as Synapse's
// DeviceListUpdater does. Local users hear of the change in /sync once
// the cache holds it.

// maxResyncQueue bounds the users waiting for a background refetch; past
// it a refetch is skipped, and the list, marked stale, is fetched by the
// next query instead.
const maxResyncQueue = 1000

// resyncTimeout bounds one /user/devices request.
const resyncTimeout = 30 * time.Second

// remoteLocks serialises the changes to one remote user's cached list (an
// update applied while a refetch is answered must not be overwritten by
// the older answer); users share the locks by hash.
type remoteLocks [64]sync.Mutex

func (l *remoteLocks) lock(userID string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(userID))
	m := &l[h.Sum32()%uint32(len(l))]
	m.Lock()
	return m.Unlock
}

// deviceListUpdate is an m.device_list_update EDU's content.
type deviceListUpdate struct {
	UserID      string          `json:"user_id"`
	DeviceID    string          `json:"device_id"`
	StreamID    int64           `json:"stream_id"`
	PrevID      []int64         `json:"prev_id"`
	Deleted     bool            `json:"deleted"`
	DisplayName *string         `json:"device_display_name"`
	Keys        json.RawMessage `json:"keys"`
}

// HandleDeviceListUpdate takes an m.device_list_update EDU from origin.
func (s *Service) HandleDeviceListUpdate(ctx context.Context, origin string, content json.RawMessage) error {
	var edu deviceListUpdate
	if err := json.Unmarshal(content, &edu); err != nil {
		return mxerr.BadJSON("m.device_list_update: %v", err)
	}
	if err := checkOrigin(origin, edu.UserID); err != nil {
		return err
	}
	tracked, err := s.sharesRoom(ctx, edu.UserID)
	if err != nil || !tracked {
		// Updates come for users sharing a room with this server; for
		// anyone else (a list cached by a query) the cache is only
		// dropped: Synapse ignores such updates altogether.
		if err == nil {
			err = s.MarkRemoteDeviceListStale(ctx, edu.UserID)
		}
		return err
	}
	applied, err := s.applyUpdate(ctx, edu)
	if err != nil || applied {
		return err
	}
	// Not applicable in place: the list is refetched; until then a
	// query asks the owner's server.
	if err := s.store.MarkRemoteDevicesStale(ctx, edu.UserID, 0); err != nil {
		return err
	}
	s.Resync(edu.UserID)
	return nil
}

// MarkRemoteDeviceListStale forgets the cached device list of another
// server's user, so that the next query asks their server, and records
// the change in the device-list stream so that local users sharing a
// room with them are told by /sync.
func (s *Service) MarkRemoteDeviceListStale(ctx context.Context, userID string) error {
	if _, err := s.atNewPosition(func(pos int64) (bool, error) {
		return true, s.store.MarkRemoteDevicesStale(ctx, userID, pos)
	}); err != nil {
		return err
	}
	s.deviceListChanged(ctx, userID)
	return nil
}

// sharesRoom tells whether a remote user is joined to a room this server
// is in: the users whose device lists other servers keep us told of.
func (s *Service) sharesRoom(ctx context.Context, userID string) (bool, error) {
	rooms, err := s.store.MembershipsOf(ctx, userID, spec.Join)
	return len(rooms) > 0, err
}

// applyUpdate applies an update to the cached list when it follows on
// from it: the list is fresh, at a known stream_id, and every prev_id of
// the update names that stream_id (an update restating the current
// stream_id, as sent to a server that newly shares a room, changes
// nothing then). It reports whether it did.
func (s *Service) applyUpdate(ctx context.Context, edu deviceListUpdate) (bool, error) {
	defer s.remote.lock(edu.UserID)()
	l, err := s.store.RemoteDevices(ctx, edu.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if l.Stale || l.StreamID == 0 || edu.StreamID < l.StreamID {
		return false, nil
	}
	for _, p := range edu.PrevID {
		if p != l.StreamID {
			return false, nil
		}
	}
	devices := map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(l.Devices), &devices); err != nil {
		return false, nil
	}
	switch {
	case edu.Deleted:
		delete(devices, edu.DeviceID)
	case len(edu.Keys) > 0 && string(edu.Keys) != "null":
		var dk fclient.DeviceKeys
		if json.Unmarshal(edu.Keys, &dk) != nil || dk.UserID != edu.UserID || dk.DeviceID != edu.DeviceID {
			return false, nil // keys for someone else: refetch rather than guess
		}
		obj := withoutNulls(dk)
		if edu.DisplayName != nil {
			obj = withDisplayName(obj, *edu.DisplayName)
		}
		raw, _ := json.Marshal(obj)
		devices[edu.DeviceID] = raw
	case edu.DisplayName != nil:
		// A rename: the keys are as cached.
		if old, ok := devices[edu.DeviceID]; ok {
			devices[edu.DeviceID] = setUnsigned(old, "device_display_name", *edu.DisplayName)
		}
	}
	raw, err := json.Marshal(devices)
	if err != nil {
		return false, err
	}
	l.Devices, l.StreamID, l.FetchedTS = string(raw), edu.StreamID, s.now().UnixMilli()
	if err := s.storeRemote(ctx, edu.UserID, l); err != nil {
		return false, err
	}
	return true, nil
}

// storeRemote caches a list and records the change in the device-list
// stream, waking the local users sharing a room with its owner.
func (s *Service) storeRemote(ctx context.Context, userID string, l store.RemoteDeviceList) error {
	if _, err := s.atNewPosition(func(pos int64) (bool, error) {
		return true, s.store.StoreRemoteDevices(ctx, userID, l, pos)
	}); err != nil {
		return err
	}
	s.deviceListChanged(ctx, userID)
	return nil
}

func withDisplayName(obj map[string]any, name string) map[string]any {
	unsigned, _ := obj["unsigned"].(map[string]any)
	if unsigned == nil {
		unsigned = map[string]any{}
	}
	unsigned["device_display_name"] = name
	obj["unsigned"] = unsigned
	return obj
}

// TrackRemoteUser starts keeping a remote user's device list, as when
// they join a room with local users: unless it is cached at a known
// stream_id already, it is fetched in the background, so that local
// users encrypting to them find it at once.
func (s *Service) TrackRemoteUser(ctx context.Context, userID string) error {
	if s.IsLocal(userID) || serverOf(userID) == "" {
		return nil
	}
	l, err := s.store.RemoteDevices(ctx, userID)
	if err == nil && !l.Stale && l.StreamID != 0 {
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	s.Resync(userID)
	return nil
}

// Resync queues a background refetch of a remote user's device list;
// when the queue is full it is skipped (the list, stale or missing, is
// fetched by the next query).
func (s *Service) Resync(userID string) {
	select {
	case s.resync <- userID:
	default:
		s.log.Info("keys: device-list refetch queue full", "user", userID)
	}
}

// Run refetches queued device lists until ctx ends (a worker of
// internal/server).
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(s.retryTick())
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.retryDue(ctx)
		case userID := <-s.resync:
			err := s.resyncUser(ctx, userID)
			if ctx.Err() != nil {
				continue
			}
			if err == nil {
				s.retries.done(userID)
				continue
			}
			s.log.Info("keys: device-list refetch", "user", userID, "err", err)
			// The list stays stale and is fetched again later
			// (resyncretry.go); local users are told it changed, so
			// that their clients query it.
			if !s.retries.failed(userID, s.now(), s.maxRetry) {
				s.log.Info("keys: too many device-list refetches to retry", "user", userID)
			}
			if err := s.MarkRemoteDeviceListStale(ctx, userID); err != nil {
				s.log.Warn("keys: marking a device list stale", "user", userID, "err", err)
			}
		}
	}
}

// resyncUser fetches a remote user's list with /user/devices and caches
// it, unless an update applied meanwhile took the cache past the answer.
func (s *Service) resyncUser(ctx context.Context, userID string) error {
	if s.fed == nil {
		return errNoFederation
	}
	fctx, cancel := context.WithTimeout(ctx, resyncTimeout)
	defer cancel()
	res, err := s.fed.GetUserDevices(fctx, spec.ServerName(s.server), spec.ServerName(serverOf(userID)), userID)
	if err != nil {
		return err
	}
	if res.UserID != userID {
		return errors.New("keys: /user/devices answered for another user")
	}
	l, err := userDevicesList(userID, res)
	if err != nil {
		return err
	}
	defer s.remote.lock(userID)()
	old, err := s.store.RemoteDevices(ctx, userID)
	if err == nil && !old.Stale && old.StreamID > l.StreamID {
		return nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return s.storeRemote(ctx, userID, l)
}

// userDevicesList turns a /user/devices answer into the cached form:
// devices without keys (never uploaded any) are left out, as a key
// query would not list them; keys not naming the user and device they
// are listed under are dropped, as Synapse does.
func userDevicesList(userID string, res fclient.RespUserDevices) (store.RemoteDeviceList, error) {
	devices := map[string]map[string]any{}
	for _, d := range res.Devices {
		k := d.Keys
		if k.UserID != userID || k.DeviceID != d.DeviceID {
			continue
		}
		obj := withoutNulls(k)
		if d.DisplayName != "" {
			obj = withDisplayName(obj, d.DisplayName)
		}
		devices[d.DeviceID] = obj
	}
	raw, err := json.Marshal(devices)
	if err != nil {
		return store.RemoteDeviceList{}, err
	}
	l := store.RemoteDeviceList{Devices: string(raw), FetchedTS: time.Now().UnixMilli(), StreamID: res.StreamID}
	if k := res.MasterKey; k != nil && k.UserID == userID {
		b, _ := json.Marshal(withoutNulls(k))
		l.MasterKey = string(b)
	}
	if k := res.SelfSigningKey; k != nil && k.UserID == userID {
		b, _ := json.Marshal(withoutNulls(k))
		l.SelfKey = string(b)
	}
	return l, nil
}

// CachedDevices is a remote user's device list as this server holds it,
// without asking their server: ok is false when none is held or it is
// stale or expired, so that a key query would ask (diagnostics, and the
// tests showing that lists are kept without asking).
func (s *Service) CachedDevices(ctx context.Context, userID string) (devices map[string]json.RawMessage, ok bool, err error) {
	l, err := s.store.RemoteDevices(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if fresh, err := s.cacheFresh(ctx, userID, l); err != nil || !fresh {
		return nil, false, err
	}
	devices = map[string]json.RawMessage{}
	if err := json.Unmarshal([]byte(l.Devices), &devices); err != nil {
		return nil, false, err
	}
	return devices, true, nil
}

// cacheFresh tells whether a cached list may answer a query: not stale,
// and either younger than remoteCacheTTL or kept by its owner's updates
// (at a known stream_id, while the owner shares a room with this
// server, so that their server keeps sending them), as Synapse trusts
// the lists it tracks.
func (s *Service) cacheFresh(ctx context.Context, userID string, l store.RemoteDeviceList) (bool, error) {
	if l.Stale {
		return false, nil
	}
	if s.now().Sub(time.UnixMilli(l.FetchedTS)) < remoteCacheTTL {
		return true, nil
	}
	if l.StreamID == 0 {
		return false, nil
	}
	return s.sharesRoom(ctx, userID)
}
