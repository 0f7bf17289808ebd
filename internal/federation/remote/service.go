// Package remote is this server acting towards other servers: the
// federation client (server discovery, TLS, request signing), the key
// ring that verifies their signatures, the durable per-destination
// sender, and the room operations made through another server (joins,
// leaves, knocks, invite countersigning, alias resolution, backfill,
// remote media and profile queries), plus the EDUs that carry local
// users' typing, receipts, presence and device changes out. The
// server-server API other servers call is the parent package
// internal/federation, which may use this one; this one never imports
// it.
package remote

import (
	"context"
	"log/slog"
	"sync"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is what the EDU destinations are read from: who shares a room
// with whom.
type Store interface {
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
	JoinedServers(ctx context.Context, roomID string) ([]string, error)
	JoinedMembers(ctx context.Context, roomID string) ([]string, error)
}

// LocalKeys is the end-to-end encryption service, read for the device
// and cross-signing keys device-list EDUs carry.
type LocalKeys interface {
	QueryLocal(ctx context.Context, want map[string][]string) (*keys.QueryResponse, error)
}

// Deps are what this server reaches other servers with.
type Deps struct {
	ServerName string
	Key        signing.Key
	KeyRing    *gomatrixserverlib.KeyRing
	Client     fclient.FederationClient
	// KeyStore keeps the key answers the notary endpoints serve.
	KeyStore KeyStore
	Rooms    *rooms.Engine
	Store    Store
	// Sender delivers events and EDUs; Bus is where local users' typing,
	// receipts, presence and key changes are heard to be sent with it.
	Sender *Sender
	Bus    bus.Bus
	Keys   LocalKeys
	Log    *slog.Logger
	// PartialStateJoins: joins of remote rooms ask for partial state
	// (omit_members; partialstate.go).
	PartialStateJoins bool
	// Reputation drops backfilled events the reputation feeds take down,
	// and Media records the media backfilled events reference
	// (reputation.go; nil: none).
	Reputation TakedownScreen
	Media      MediaIndex
}

// Service performs what this server does towards other servers.
type Service struct {
	d Deps
	// partial completes rooms joined with partial state (partialstate.go;
	// nil without a client).
	partial *PartialStateResync
	// fetchSlots bounds the /event requests in flight per destination
	// (eventfetch.go): server name -> semaphore.
	fetchSlots sync.Map
	// holds keeps the events sent for rooms while they are being
	// joined (joinhold.go).
	holds joinHolds
}

// New makes the service and subscribes the EDU senders to the bus.
func New(d Deps) *Service {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	f := &Service{d: d}
	if d.Client != nil && d.Rooms != nil {
		f.partial = newPartialStateResync(f)
	}
	if d.Sender != nil && d.Bus != nil {
		f.subscribeEDUs(d.Bus)
		if d.Keys != nil {
			f.subscribeKeyEDUs(d.Bus, d.Keys)
		}
	}
	return f
}

// UserIDForSender maps an event's sender to its user ID: every room
// version Myelin supports uses user IDs as sender IDs (no pseudo-IDs).
func UserIDForSender(_ spec.RoomID, s spec.SenderID) (*spec.UserID, error) {
	return spec.NewUserID(string(s), true)
}
