// Package federation is the server-server API other servers call: the
// routes, X-Matrix request verification, /send transactions (and the
// gap filling they trigger), make_/send_ join, leave, knock and invite
// serving, event, state and backfill serving, queries, key and notary
// serving, media serving, OpenID and other servers' EDUs. What this
// server does towards other servers (the client, key ring, sender and
// room operations through another server) is internal/federation/remote.
// Rooms are decided by the room engine.
package federation

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/signing"
)

// Store is the storage the federation API reads directly (rooms and
// their events go through the engine).
type Store interface {
	// InboundTxn is the answer given to a transaction already processed
	// (found false: none).
	InboundTxn(ctx context.Context, origin, txnID string) (response []byte, found bool, err error)
	RecordInboundTxn(ctx context.Context, origin, txnID string, response []byte, ts int64) error
	UserExists(ctx context.Context, localpart string) (bool, error)
	// RoomBlocked is whether an admin blocked the room: invites into it
	// are refused (Synapse's on_invite_request).
	RoomBlocked(ctx context.Context, roomID string) (by string, blocked bool, err error)
	// ServerKeyResponse is another server's signed key answer, as last
	// fetched (the notary endpoints serve it).
	ServerKeyResponse(ctx context.Context, serverName string) (int64, []byte, error)
}

// Deps are what the server-server API serves from.
type Deps struct {
	ServerName string
	Key        signing.Key
	// OldKeys are retired keys, published as old_verify_keys.
	OldKeys []signing.OldKey
	Version string
	KeyRing *gomatrixserverlib.KeyRing
	Client  fclient.FederationClient
	// Remote is this server acting towards others: the events and keys
	// a request depends on are fetched through it (nil without
	// federation).
	Remote *remote.Service
	Rooms  *rooms.Engine
	Store  Store
	Log    *slog.Logger

	// What the read endpoints answer from (queries.go).
	Aliases   AliasResolver
	Profiles  ProfileSource
	Directory *directory.Service
	OpenID    OpenIDTokens
	// Sender is told when an origin is reachable again (nil without
	// federation).
	Sender *remote.Sender
	Keys   UserKeys
	// Media serves local media to other servers (nil: not served).
	Media *media.Service
	// Invites refuses invites our users block (nil: none refused).
	Invites InviteChecker
	// AppServiceInvitees takes invites to unregistered users that an
	// application service's namespace holds (nil: such invites are 404
	// like any unknown user's).
	AppServiceInvitees interface {
		InviteeKnown(ctx context.Context, userID string) bool
	}

	// The services other servers' EDUs go to (nil: that EDU type is
	// ignored, as the spec lets a server do).
	Typing   RemoteTyping
	Receipts RemoteReceipts
	Presence RemotePresence

	// Reputation refuses what the server's reputation feeds list (nil:
	// nothing is refused).
	Reputation Reputation
}

// API is the server-server API.
type API struct {
	d   Deps
	now func() time.Time

	keysMu   sync.Mutex
	keys     []byte
	keysTill time.Time

	in inbound

	// notaryFailures: servers the notary endpoints could not fetch keys
	// from lately.
	notaryFailures failureCache
}

// New makes the server-server API and registers the handlers of the
// EDUs whose services it was given.
func New(d Deps) *API {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	a := &API{d: d, now: time.Now}
	if d.Typing != nil {
		a.handleTyping(d.Typing)
	}
	if d.Receipts != nil {
		a.handleReceipts(d.Receipts)
	}
	if d.Presence != nil {
		a.handlePresence(d.Presence)
	}
	if d.Keys != nil {
		a.handleKeyEDUs(d.Keys)
	}
	return a
}

// Register adds the server-server routes.
func (a *API) Register(rt *httpapi.Router) {
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/federation/v1/version", Handler: a.serverVersion})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/key/v2/server", Handler: a.serverKeys})
	// The key ID suffix is deprecated but still sent by old servers.
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/key/v2/server/{keyId}", Handler: a.serverKeys})
	if a.d.Rooms == nil {
		return
	}
	a.registerNotary(rt)
	a.registerTransactions(rt)
	a.registerMembership(rt)
	a.registerEvents(rt)
	a.registerQueries(rt)
	a.registerOpenID(rt)
	a.registerUserKeys(rt)
	a.registerMedia(rt)
}

// Request is a server-server request whose X-Matrix signature checked out.
type Request struct {
	*http.Request
	// Origin is the server that signed the request.
	Origin string
	// Content is the JSON body the signature covers.
	Content []byte
}

// signed wraps a handler so that it only runs for requests signed by
// their origin with a key the key ring vouches for (X-Matrix, server-server
// spec "Request Authentication").
func (a *API) signed(h func(r *Request) (any, error)) httpapi.Handler {
	return func(r *http.Request, _ *httpapi.Caller) (any, error) {
		fr, err := a.verify(r)
		if err != nil {
			return nil, err
		}
		return h(fr)
	}
}

// verify checks a request's X-Matrix signature.
func (a *API) verify(r *http.Request) (*Request, error) {
	fr, resp := fclient.VerifyHTTPRequest(r, a.now(), spec.ServerName(a.d.ServerName), a.isLocal, a.d.KeyRing)
	if fr == nil {
		switch resp.Code {
		case http.StatusUnauthorized:
			return nil, mxerr.Unauthorized("Invalid or missing X-Matrix signature")
		case http.StatusBadRequest:
			return nil, mxerr.Unauthorized("Malformed server-server request")
		default:
			return nil, mxerr.Unknown("Could not verify the request's signature")
		}
	}
	return &Request{Request: r, Origin: string(fr.Origin()), Content: fr.Content()}, nil
}

func (a *API) isLocal(name spec.ServerName) bool { return string(name) == a.d.ServerName }

// checkACL refuses a request about a room from a server its
// m.room.server_acl denies.
func (a *API) checkACL(ctx context.Context, roomID, origin string) error {
	ok, err := a.d.Rooms.ServerAllowed(ctx, roomID, origin)
	if err != nil {
		return err
	}
	if !ok {
		return mxerr.Forbidden("Server %s is denied by the room's server ACL", origin)
	}
	return nil
}

// roomKnown refuses requests about rooms this server is not in.
func (a *API) roomVersion(ctx context.Context, roomID string) (gomatrixserverlib.IRoomVersion, error) {
	v, err := a.d.Rooms.RoomVersion(ctx, roomID)
	if v == nil {
		return nil, mxerr.NotFound("Room %s is not known to this server", roomID)
	}
	return v, err
}
