// Package clientapi holds the client-server API's HTTP handlers. Each file
// serves one family of endpoints; handlers parse the request, call one
// domain service and shape the response, nothing more.
package clientapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/aliases"
	"github.com/myelin-chat/myelin/internal/appservice"
	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/delayed"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/presence"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/receipts"
	"github.com/myelin-chat/myelin/internal/regtokens"
	"github.com/myelin-chat/myelin/internal/relations"
	"github.com/myelin-chat/myelin/internal/reports"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomupgrade"
	"github.com/myelin-chat/myelin/internal/search"
	"github.com/myelin-chat/myelin/internal/slidingsync"
	"github.com/myelin-chat/myelin/internal/threadsubs"
	"github.com/myelin-chat/myelin/internal/typing"
	"github.com/myelin-chat/myelin/internal/uia"
)

// Deps are the services the client-server API calls.
type Deps struct {
	Config   *config.Config
	Accounts *accounts.Service
	UIA      *uia.Manager
	// RegTokens decides on and reserves registration tokens.
	RegTokens *regtokens.Service
	Rooms     *rooms.Engine
	Sync      *clientsync.Service
	// SlidingSync serves simplified sliding sync (MSC4186); nil leaves it out.
	SlidingSync *slidingsync.Service
	Render      clientevent.Renderer
	// Membership carries out joins, leaves, invites, knocks, kicks and
	// bans, locally or through federation.
	Membership *membership.Service
	// Aliases manages room aliases and checks canonical alias events.
	Aliases *aliases.Service
	// Relations pages through an event's children and a room's threads.
	Relations *relations.Aggregator
	// Filters stores users' filters and bounds their size.
	Filters *filter.Service
	// Upgrades carries out room upgrades.
	Upgrades *roomupgrade.Service
	// Directory describes rooms for the public room list and spaces.
	Directory *directory.Service
	// Spaces walks space hierarchies and summarises rooms, asking other
	// servers about rooms this one is not in.
	Spaces *directory.Spaces
	// Federation answers questions for other servers' rooms, aliases and
	// users; nil when federation is off.
	Federation Remote
	// Typing and Receipts serve typing notifications, receipts and read
	// markers; nil leaves their endpoints out.
	Typing   *typing.Service
	Receipts *receipts.Service
	// Keys serves end-to-end encryption; nil leaves its endpoints out.
	Keys *keys.Service
	// AccountData, Push and Reports serve account data and tags, push
	// rules, pushers and notifications, and content reports.
	AccountData *accountdata.Service
	Push        *push.Service
	Reports     *reports.Service
	// Presence serves /presence and records senders' activity; nil
	// leaves its endpoints out.
	Presence *presence.Service
	// Media serves the content repository; nil leaves its endpoints out.
	Media *media.Service
	// Search serves POST /search; nil leaves it out.
	Search *search.Service
	// Users serves /user_directory/search; nil leaves it out.
	Users *search.Users
	// Delayed schedules MSC4140 delayed events; nil (or off) leaves them out.
	Delayed *delayed.Service
	// ThreadSubs keeps MSC4306 thread subscriptions; nil leaves them out.
	ThreadSubs *threadsubs.Service
	// AppServices are the registered application services (possibly
	// none), AppServiceClient makes the requests to them.
	AppServices      *appservice.Registry
	AppServiceClient *appservice.Client
}

// Remote is what the client API asks of federation beyond membership
// changes (which go through the membership service): other servers'
// aliases, history, profiles and room directories.
type Remote interface {
	ResolveAlias(ctx context.Context, alias string) (roomID string, servers []string, err error)
	// Backfill fetches history older than the room's oldest event here.
	Backfill(ctx context.Context, roomID string, limit int) (int, error)
	// FillGaps backfills the holes in the middle of history that meet
	// stream positions lo..hi.
	FillGaps(ctx context.Context, roomID string, lo, hi int64, limit int) (int, error)
	QueryProfile(ctx context.Context, userID, field string) (map[string]any, error)
	PublicRooms(ctx context.Context, server string, body map[string]any) (map[string]any, error)
	// TimestampToEvent asks the room's other servers for the event
	// closest to ts; ok is false when none answered with one.
	TimestampToEvent(ctx context.Context, roomID string, ts int64, backwards bool) (eventID string, originTS int64, ok bool, err error)
}

// API is the client-server API.
type API struct {
	cfg        *config.Config
	accounts   *accounts.Service
	uia        *uia.Manager
	regTokens  *regtokens.Service
	rooms      *rooms.Engine
	sync       *clientsync.Service
	sliding    *slidingsync.Service
	render     clientevent.Renderer
	federation Remote
	membership *membership.Service
	dir        *directory.Service
	spaces     *directory.Spaces
	aliases    *aliases.Service
	upgrades   *roomupgrade.Service
	filters    *filter.Service
	rels       *relations.Aggregator
	keys       *keys.Service
	typing     *typing.Service
	receipts   *receipts.Service

	accountData *accountdata.Service
	push        *push.Service
	reports     *reports.Service
	presence    *presence.Service
	media       *media.Service
	search      *search.Service
	users       *search.Users
	delayed     *delayed.Service
	threadSubs  *threadsubs.Service
	appservices *appservice.Registry
	asClient    *appservice.Client
}

// New makes the API.
func New(d Deps) *API {
	return &API{cfg: d.Config, accounts: d.Accounts, uia: d.UIA, regTokens: d.RegTokens, rooms: d.Rooms,
		sync: d.Sync, render: d.Render, federation: d.Federation, membership: d.Membership, dir: d.Directory, spaces: d.Spaces, aliases: d.Aliases, upgrades: d.Upgrades, filters: d.Filters, rels: d.Relations,
		accountData: d.AccountData, push: d.Push, reports: d.Reports, keys: d.Keys,
		typing: d.Typing, receipts: d.Receipts, presence: d.Presence, media: d.Media, search: d.Search, users: d.Users,
		sliding: d.SlidingSync, delayed: d.Delayed, threadSubs: d.ThreadSubs,
		appservices: d.AppServices, asClient: d.AppServiceClient}
}

// Rate-limit buckets, configured in config.RateLimit.
const (
	LimitLogin    = "login"
	LimitRegister = "register"
	LimitMessage  = "message"
	LimitReport   = "report"
)

// Authenticator adapts the accounts service to the HTTP layer.
func (a *API) Authenticator() httpapi.Authenticator {
	return func(ctx context.Context, token string, r *http.Request, allowExpired bool) (*httpapi.Caller, error) {
		if reg := a.appservices.ByToken(token); reg != nil {
			return a.appServiceCaller(ctx, reg, r)
		}
		c, err := a.accounts.Authenticate(ctx, token, httpapi.ClientIP(r), r.UserAgent(), allowExpired)
		if err != nil {
			return nil, err
		}
		return &httpapi.Caller{
			UserID: c.User.UserID, Localpart: c.User.Localpart, DeviceID: c.DeviceID,
			IsGuest: c.User.IsGuest, IsAdmin: c.User.IsAdmin, TokenHash: c.TokenHash,
			Locked: c.User.Locked, Suspended: c.User.Suspended, ShadowBanned: c.User.ShadowBanned,
		}, nil
	}
}

// Register adds every client-server route to rt.
func (a *API) Register(rt *httpapi.Router) {
	a.registerDiscovery(rt)
	a.registerLogin(rt)
	a.registerRegistration(rt)
	a.registerAccount(rt)
	a.registerDevices(rt)
	a.registerProfile(rt)
	a.registerRooms(rt)
	a.registerRoomEvents(rt)
	a.registerMessages(rt)
	a.registerSync(rt)
	a.registerSlidingSync(rt)
	a.registerRelations(rt)
	a.registerContext(rt)
	a.registerDirectory(rt)
	a.registerUpgrade(rt)
	a.registerSpaces(rt)
	a.registerOpenID(rt)
	a.registerEphemeral(rt)
	a.registerKeys(rt)
	a.registerAccountData(rt)
	a.registerPush(rt)
	a.registerReports(rt)
	a.registerPresence(rt)
	a.registerMedia(rt)
	a.registerSearch(rt)
	a.registerUserDirectory(rt)
	a.registerDelayed(rt)
	a.registerMatrixRTC(rt)
	a.registerThreadSubscriptions(rt)
	a.registerAppServices(rt)
	a.registerThirdParty(rt)
}

// legacy adds a route under both /v3 and the older /r0 prefix, which
// Synapse still serves for every endpoint that existed in r0, and under
// /unstable (see unstable).
func legacy(rt *httpapi.Router, r httpapi.Route) {
	path := r.Path
	r.Path = "/_matrix/client/v3" + path
	rt.Add(r)
	r.Path = "/_matrix/client/r0" + path
	rt.Add(r)
	unstable(rt, r, path)
}

// unstable adds a route under /_matrix/client/unstable as well. Synapse
// serves every r0/v3 endpoint there unless a servlet opts out
// (client_patterns' unstable=True default), and clients still call some
// there: cross-signing uploads (keys/device_signing/upload,
// keys/signatures/upload) and key backup (room_keys/*) were unstable
// before r0.6.1 and older matrix-js-sdk and Element Android releases
// kept those paths.
func unstable(rt *httpapi.Router, r httpapi.Route, path string) {
	r.Path = "/_matrix/client/unstable" + path
	rt.Add(r)
}

// v3 adds a route that exists from /v3 on, and under /unstable, where it
// was before (see unstable).
func v3(rt *httpapi.Router, r httpapi.Route) {
	path := r.Path
	r.Path = "/_matrix/client/v3" + path
	rt.Add(r)
	unstable(rt, r, path)
}

// v1 adds a route that only exists under /v1, and under the unstable
// paths of its MSC (msc, below /_matrix/client/unstable) that Synapse
// still serves and clients call before the spec version that made it
// stable is advertised.
func v1(rt *httpapi.Router, r httpapi.Route, msc ...string) {
	path := r.Path
	r.Path = "/_matrix/client/v1" + path
	rt.Add(r)
	for _, p := range msc {
		unstable(rt, r, p)
	}
}

// empty is the {} most successful writes answer with.
var empty = struct{}{}

// withUIA runs User-Interactive Auth for an authenticated request whose
// body carries "auth", using the m.login.password stage.
func (a *API) withUIA(r *http.Request, c *httpapi.Caller, rawAuth json.RawMessage) (*uia.Session, error) {
	auth, err := uia.ParseAuth(rawAuth)
	if err != nil {
		return nil, err
	}
	return a.uia.Check(r.Context(), uia.Request{Method: r.Method, URI: r.URL.Path, Localpart: c.Localpart, Auth: auth},
		[]uia.Flow{{"m.login.password"}}, []uia.Stage{passwordStage{a.accounts}})
}
