// Package federation is the server-server API: the keys and requests
// other servers verify, the endpoints they call, and the client and
// sender through which this server calls them. Rooms are decided by the
// room engine; this package carries events between it and other servers.
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

	"github.com/myelin-chat/myelin/internal/bus"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/store"
)

// Store is the storage the federation API reads directly (rooms and
// their events go through the engine).
type Store interface {
	KeyStore
	InboundTxn(ctx context.Context, origin, txnID string) ([]byte, error)
	RecordInboundTxn(ctx context.Context, origin, txnID string, response []byte, ts int64) error
	UserExists(ctx context.Context, localpart string) (bool, error)
	MembershipsOf(ctx context.Context, userID string, memberships ...string) ([]store.RoomMembership, error)
	JoinedServers(ctx context.Context, roomID string) ([]string, error)
	JoinedMembers(ctx context.Context, roomID string) ([]string, error)
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
	Rooms   *rooms.Engine
	// PartialStateJoins: joins of remote rooms ask for partial state
	// (omit_members; partialstate.go).
	PartialStateJoins bool
	Store             Store
	Log               *slog.Logger

	// What the read endpoints answer from (events.go, queries.go).
	Timestamps TimestampStore
	Aliases    AliasStore
	Profiles   ProfileSource
	Directory  *directory.Service
	OpenID     OpenIDTokens
	// Sender delivers this server's events and EDUs (nil without
	// federation); EDU producers queue through it.
	Sender *Sender
	Keys   UserKeys

	// Bus is where local users' typing, receipts and presence are heard,
	// to send them as EDUs (with Sender).
	Bus bus.Bus
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

	// media serves local media to other servers (nil: not served).
	media *media.Service
	// partial completes rooms joined with partial state (partialstate.go).
	partial *PartialStateResync
}

// New makes the server-server API.
func New(d Deps) *API {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	a := &API{d: d, now: time.Now}
	if d.Client != nil && d.Rooms != nil {
		a.partial = newPartialStateResync(a)
	}
	if d.Sender != nil && d.Bus != nil {
		a.subscribeEDUs(d.Bus)
		if d.Keys != nil {
			a.subscribeKeyEDUs(d.Bus, d.Keys)
		}
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
	if err == store.ErrNotFound || v == nil {
		return nil, mxerr.NotFound("Room %s is not known to this server", roomID)
	}
	return v, err
}
