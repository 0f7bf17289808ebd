// Package keys is the server side of end-to-end encryption: device and
// one-time keys, cross-signing, the device-list change stream, to-device
// messages and server-side key backup (client-server spec "End-to-End
// Encryption" and "Send-to-Device messaging"). The server never sees
// plaintext; it stores what clients signed, checks the signatures it can
// and hands keys out.
package keys

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage the service keeps its data in.
type Store interface {
	AddDeviceListChange(ctx context.Context, pos int64, userIDs ...string) error
	LastDeviceListPos(ctx context.Context, userID string) (int64, error)
	DeviceListChangedUsers(ctx context.Context, after, upto int64) ([]string, error)
	UsersSharingRooms(ctx context.Context, userID string) ([]string, error)
	JoinedMembers(ctx context.Context, roomID string) ([]string, error)
	MemberChangesInUsersRooms(ctx context.Context, userID string, after, upto int64) ([]store.MemberChange, error)
	DeviceKeys(ctx context.Context, userID, localpart string, deviceIDs []string) ([]store.DeviceKeysRow, error)
	SetDeviceKeys(ctx context.Context, userID, deviceID, keyJSON string, decide func(old string) (bool, error), pos int64) (bool, error)
	AddOneTimeKeys(ctx context.Context, userID, deviceID string, keys []store.KeyObject, equal func(a, b string) bool) error
	OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error)
	ClaimOneTimeKey(ctx context.Context, userID, deviceID, algorithm string) (store.KeyObject, bool, error)
	SetFallbackKeys(ctx context.Context, userID, deviceID string, keys []store.KeyObject) error
	UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error)
	DeleteDeviceE2E(ctx context.Context, userID string, deviceIDs []string, pos int64) error
	CrossSigningKeys(ctx context.Context, userID string) (map[string]string, error)
	SetCrossSigningKeys(ctx context.Context, userID string, keys map[string]string, pos int64) error
	AddSignatures(ctx context.Context, sigs []store.Signature, pos int64) error
	SignaturesOf(ctx context.Context, targetUser string) ([]store.Signature, error)
	RemoteDevices(ctx context.Context, userID string) (store.RemoteDeviceList, error)
	StoreRemoteDevices(ctx context.Context, userID string, l store.RemoteDeviceList, pos int64) error
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
	MarkRemoteDevicesStale(ctx context.Context, userID string, pos int64) error
	ListDevices(ctx context.Context, localpart string) ([]store.Device, error)
	QueueToDevice(ctx context.Context, sender, senderDevice, eventType, txnID string, ts int64, msgs []store.ToDeviceMessage) (bool, error)
	ToDeviceMessages(ctx context.Context, userID, deviceID string, after int64, limit int) ([]store.ToDeviceMessage, error)
	DeleteToDeviceMessages(ctx context.Context, userID, deviceID string, upTo int64) error
	CreateBackupVersion(ctx context.Context, userID, algorithm, authData string) (int64, error)
	GetBackupVersion(ctx context.Context, userID string, version int64) (store.BackupVersion, error)
	UpdateBackupAuthData(ctx context.Context, userID string, version int64, authData string) error
	DeleteBackupVersion(ctx context.Context, userID string, version int64) error
	BackupSessions(ctx context.Context, userID string, version int64, roomID, sessionID string) ([]store.BackupSession, error)
	PutBackupSessions(ctx context.Context, userID string, version int64, sessions []store.BackupSession, better func(old, new store.BackupSession) bool) error
	DeleteBackupSessions(ctx context.Context, userID string, version int64, roomID, sessionID string) error
}

// Stream hands out positions of the event stream, which the device-list
// change stream shares (rooms.StreamGen).
type Stream interface {
	Next() int64
	Done(p int64)
	Abandon(p int64)
	Current() int64
}

// Federation is what the service asks of other servers.
type Federation interface {
	QueryKeys(ctx context.Context, origin, s spec.ServerName, keys map[string][]string) (fclient.RespQueryKeys, error)
	ClaimKeys(ctx context.Context, origin, s spec.ServerName, oneTimeKeys map[string]map[string]string) (fclient.RespClaimKeys, error)
	GetUserDevices(ctx context.Context, origin, s spec.ServerName, userID string) (fclient.RespUserDevices, error)
}

// Options configure the service.
type Options struct {
	ServerName string
	Store      Store
	Stream     Stream
	// Federation is nil when federation is off: remote users then fail.
	Federation Federation
	Log        *slog.Logger
	// Members, when set, tells whether any membership changed since a
	// position (the room engine), sparing /sync a query.
	Members interface {
		MembershipsUnchangedSince(after int64) bool
	}

	// Bus carries Changed; nil: a bus nobody listens to.
	Bus bus.Bus
	// RemoteToDevice hands to-device messages for another server's users
	// to the federation sender (an m.direct_to_device EDU); nil without federation.
	RemoteToDevice func(ctx context.Context, sender, destination, eventType string, messages map[string]map[string]json.RawMessage) error
	// MaxRetryInterval caps the back-off between refetches of a remote
	// user's device list that failed (federation.max_retry_interval);
	// 0: an hour.
	MaxRetryInterval time.Duration
}

// Service is the end-to-end encryption service. Its hook fields may be
// set after New and before the server starts; each is optional.
type Service struct {
	server string
	store  Store
	stream Stream
	fed    Federation
	log    *slog.Logger
	now    func() time.Time

	members interface {
		MembershipsUnchangedSince(after int64) bool
	}
	// listMarks holds the latest position of any keys change (key ""),
	// so that /sync skips the device-list queries when there was none.
	listMarks *cache.Marks
	// inbox knows, per device, that it has no to-device messages after a
	// position, and acked how far messages were deleted; both spare
	// /sync its queries and writes.
	inboxMu sync.Mutex
	inbox   map[string]inboxState
	// inboxEpoch counts the times inbox was emptied (at maxInbox
	// devices), so that a read that began before cannot mark an inbox
	// empty whose newer message it did not see.
	inboxEpoch int64
	// counts caches devices' key counts while countsGen stays the same.
	countsMu  sync.Mutex
	countsGen int64
	counts    map[string]countsEntry
	bus       bus.Bus
	// remote serialises changes to a remote user's cached device list;
	// resync holds the users whose lists Run refetches.
	remote remoteLocks
	resync chan string
	// retries are the failed refetches Run retries (resyncretry.go),
	// backing off up to maxRetry.
	retries  resyncRetries
	maxRetry time.Duration
	// remoteToDevice is Options.RemoteToDevice.
	remoteToDevice func(ctx context.Context, sender, destination, eventType string, messages map[string]map[string]json.RawMessage) error
	// replace are the admin's windows for replacing cross-signing keys
	// without UIA (replacement.go).
	replace replaceWindows
}

// Changed is published when something changed for a local user
// outside the event stream: a to-device message, a device-list change;
// it wakes their /sync.
type Changed struct {
	UserID string `json:"user_id"`
}

// DeviceUpdate is published when a local device was added, changed
// its keys or was deleted (for the other servers: an
// m.device_list_update EDU).
type DeviceUpdate struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	Deleted  bool   `json:"deleted"`
	StreamID int64  `json:"stream_id"`
	// PrevID is the position of the user's device-list change before
	// this one (0: none), the update's prev_id (server-server spec
	// "Device Management"): a server whose cached list is there applies
	// the update, any other refetches the list.
	PrevID int64 `json:"prev_id"`
}

// CrossSigningUpdate is published when a local user's cross-signing
// keys changed (for the other servers: an m.signing_key_update EDU).
type CrossSigningUpdate struct {
	UserID string `json:"user_id"`
}

// Topics of the changes this package publishes.
const (
	TopicChanged      = "keys.changed"
	TopicDevice       = "keys.device"
	TopicCrossSigning = "keys.cross_signing"
)

// Topic implements bus.Change.
func (Changed) Topic() string { return TopicChanged }

// Topic implements bus.Change.
func (DeviceUpdate) Topic() string { return TopicDevice }

// Topic implements bus.Change.
func (CrossSigningUpdate) Topic() string { return TopicCrossSigning }

// New makes the service.
func New(o Options) *Service {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Bus == nil {
		o.Bus = bus.New()
	}
	s := &Service{server: o.ServerName, store: o.Store, stream: o.Stream, fed: o.Federation, log: o.Log, bus: o.Bus, remoteToDevice: o.RemoteToDevice, now: time.Now,
		inbox: map[string]inboxState{}, counts: map[string]countsEntry{}, resync: make(chan string, maxResyncQueue)}
	if o.Members != nil {
		s.members = o.Members
	}
	s.maxRetry = o.MaxRetryInterval
	if s.maxRetry <= 0 {
		s.maxRetry = time.Hour
	}
	if o.Stream != nil {
		s.listMarks = cache.NewMarks(o.Stream.Current())
	}
	return s
}

// IsLocal reports whether a user ID belongs to this server.
func (s *Service) IsLocal(userID string) bool { return serverOf(userID) == s.server }

func serverOf(userID string) string {
	_, server, ok := strings.Cut(userID, ":")
	if !ok {
		return ""
	}
	return server
}

func localpartOf(userID string) string {
	lp, _, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	return lp
}

// atNewPosition runs write with a fresh stream position, marking the
// position done if write stored something at it and abandoning it
// otherwise, so that the stream's current position always names
// something stored (see rooms.StreamGen).
func (s *Service) atNewPosition(write func(pos int64) (bool, error)) (int64, error) {
	pos := s.stream.Next()
	stored, err := write(pos)
	if err != nil || !stored {
		s.stream.Abandon(pos)
		return 0, err
	}
	// Over-approximated: any change at a position may be a device-list
	// change, which is all /sync needs to know to skip its queries.
	s.listMarks.Note("", pos)
	s.stream.Done(pos)
	return pos, nil
}

func (s *Service) wake(userIDs ...string) {
	for _, u := range userIDs {
		if s.IsLocal(u) {
			s.bus.Publish(context.Background(), Changed{UserID: u})
		}
	}
}

// deviceListChanged wakes the user and everyone sharing a room with
// them: their next /sync lists the user under device_lists.changed.
func (s *Service) deviceListChanged(ctx context.Context, userID string) {
	users, err := s.store.UsersSharingRooms(ctx, userID)
	if err != nil {
		s.log.Warn("keys: users sharing rooms", "user", userID, "err", err)
	}
	s.wake(append(users, userID)...)
}

// verifySigned checks that obj carries a valid signature by signer's
// ed25519 key keyID (the key's "ed25519:<id>" name) of public key pub
// (unpadded base64).
func verifySigned(obj []byte, signer, keyID, pub string) bool {
	raw, err := decodeBase64(pub)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return false
	}
	return gomatrixserverlib.VerifyJSON(signer, gomatrixserverlib.KeyID(keyID), raw, obj) == nil
}

func decodeBase64(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// canonicalEqual compares two JSON texts by their canonical forms.
func canonicalEqual(a, b string) bool {
	ca, err1 := gomatrixserverlib.CanonicalJSON([]byte(a))
	cb, err2 := gomatrixserverlib.CanonicalJSON([]byte(b))
	return err1 == nil && err2 == nil && string(ca) == string(cb)
}
