// Package server wires Myelin together: it opens the store, builds the
// domain services and HTTP APIs from the configuration, and runs the
// listeners and background workers until it is shut down.
package server

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/acme/autocert"

	"github.com/myelin-chat/myelin/internal/accountdata"
	"github.com/myelin-chat/myelin/internal/accounts"
	"github.com/myelin-chat/myelin/internal/admin"
	"github.com/myelin-chat/myelin/internal/aliases"
	"github.com/myelin-chat/myelin/internal/appservice"
	"github.com/myelin-chat/myelin/internal/clientapi"
	"github.com/myelin-chat/myelin/internal/clientevent"
	"github.com/myelin-chat/myelin/internal/clientsync"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/delayed"
	"github.com/myelin-chat/myelin/internal/directory"
	"github.com/myelin-chat/myelin/internal/federation"
	"github.com/myelin-chat/myelin/internal/federation/remote"
	"github.com/myelin-chat/myelin/internal/filter"
	"github.com/myelin-chat/myelin/internal/guests"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/keys"
	"github.com/myelin-chat/myelin/internal/lifecycle"
	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/membership"
	"github.com/myelin-chat/myelin/internal/outbound"
	"github.com/myelin-chat/myelin/internal/periodic"
	"github.com/myelin-chat/myelin/internal/presence"
	"github.com/myelin-chat/myelin/internal/push"
	"github.com/myelin-chat/myelin/internal/ratelimit"
	"github.com/myelin-chat/myelin/internal/receipts"
	"github.com/myelin-chat/myelin/internal/regtokens"
	"github.com/myelin-chat/myelin/internal/relations"
	"github.com/myelin-chat/myelin/internal/reports"
	"github.com/myelin-chat/myelin/internal/reputation"
	"github.com/myelin-chat/myelin/internal/roomadmin"
	"github.com/myelin-chat/myelin/internal/rooms"
	"github.com/myelin-chat/myelin/internal/roomupgrade"
	"github.com/myelin-chat/myelin/internal/search"
	"github.com/myelin-chat/myelin/internal/servernotices"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/slidingsync"
	"github.com/myelin-chat/myelin/internal/statistics"
	"github.com/myelin-chat/myelin/internal/store"
	"github.com/myelin-chat/myelin/internal/threadsubs"
	"github.com/myelin-chat/myelin/internal/typing"
	"github.com/myelin-chat/myelin/internal/uia"
)

// Version is the server version reported to clients and servers.
const Version = "0.1.0"

// Server is a running homeserver.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	db       *store.DB
	key      signing.Key
	outbound *outbound.Policy // where the server may connect on others' behalf
	limiter  *ratelimit.Limiter
	uia      *uia.Manager
	engine   *rooms.Engine
	keys     *keys.Service
	accounts *accounts.Service
	notifier *clientsync.Notifier
	// sender delivers events and EDUs to other servers (nil without
	// federation).
	sender *remote.Sender
	// joinPresence sends presence to servers newly sharing a room (nil
	// without federation or presence).
	joinPresence *remote.JoinPresence
	// joinDevices sends and fetches device lists when servers newly
	// share a room (nil without federation).
	joinDevices *remote.JoinDeviceLists
	// partialState completes rooms joined with partial state (nil
	// without federation).
	partialState *remote.PartialStateResync
	push         *push.Service
	acctData     *accountdata.Service
	typing       *typing.Service
	receipts     *receipts.Service
	presence     *presence.Service
	media        *media.Service
	// indexer keeps the full-text search index.
	indexer *search.Indexer
	// guests makes guests leave rooms that stop allowing them.
	guests *guests.Enforcer
	// roomAdmin runs the admin API's room deletions (a worker).
	roomAdmin *roomadmin.Service
	// reputation blends the subscribed feeds (the Enforcer enforcement
	// points are given), repLog writes its decision log, and repFeeds
	// follows the feeds' rooms.
	reputation *reputation.Blender
	repLog     *reputation.Log
	repFeeds   *reputation.Service
	// delayed fires MSC4140 delayed events (a worker); threadSubs keeps
	// MSC4306 thread subscriptions (matrixrtc.go).
	delayed    *delayed.Service
	threadSubs *threadsubs.Service
	sliding    *slidingsync.Service
	// asSender pushes transactions to the application services.
	asSender *appservice.Sender
	// asEphemeral sends them typing, receipts, presence, to-device
	// messages and the encryption extensions (MSC2409, MSC3202).
	asEphemeral *appservice.Ephemeral

	repUsers *reputation.UserFilters
	// repMedia records the rooms media is posted in, for taking down the
	// media of rooms the feeds list.
	repMedia *reputation.MediaRooms

	client, federation, metrics *http.Server
	// acmeHTTP answers ACME HTTP-01 challenges (acme.http_listen).
	acmeHTTP *http.Server
	// acme obtains and renews certificates when acme.domain is set.
	acme *autocert.Manager
	// acmeLife ends acme's cache and client at Shutdown (see acmeLifetime).
	acmeLife *acmeLifetime
	// bound maps a listener name (client, federation, metrics) to its socket.
	bound map[string]net.Listener
	fresh *freshConns

	// cancel ends the context of the listeners' and workers' lifetime;
	// wg counts the goroutines serving the listeners.
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// workers are the background workers, commit the group commit,
	// stopped after them (registerWorkers lists both).
	workers, commit lifecycle.Group
	// changes is the bus of changes outside the event stream.
	changes serverBus

	// base is the parent of every request's context; stopRequests
	// cancels it at shutdown. handlers counts the requests in flight.
	base          context.Context
	stopRequests  context.CancelCauseFunc
	handlers      inflight
	beforeDBClose func() // test hook: Shutdown calls it just before closing the database

	// clientRoutes lists the client listener's routes (ClientRoutes).
	clientRoutes func() []string
}

// maxPushHold bounds how long /sync wake-ups for an event wait for push
// to count its notifications (see clientsync.WithGate): push takes a
// millisecond or two per event, but a backlog must not hold messages up.
const maxPushHold = 50 * time.Millisecond

// New builds a server from its configuration: the data directory, the
// signing key (generated on first start), the database (migrated) and
// every service. Nothing listens until Start.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	keepHeapFloor(cfg.Memory.HeapFloorMiB)
	s, err := open(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	if err := s.build(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// built are the services one construction step hands to the next; the
// long-lived ones are also fields of Server.
type built struct {
	regTokens *regtokens.Service
	render    clientevent.Renderer
	rels      *relations.Aggregator
	dir       *directory.Service
	aliases   *aliases.Service
	acc       *accounts.Service
	members   *membership.Service
	// fedClient and remote reach other servers (nil without federation).
	fedClient fclient.FederationClient
	remote    *remote.Service
	fed       *federation.API
	// notices sends server notices (the admin API's, forwarded reports).
	notices *servernotices.Service
	// invites are users' invite permissions, which the client API,
	// federation and /sync apply alike.
	invites *membership.InviteRules
	// rep is the enforcement points of the reputation feeds.
	rep *reputation.Points
	// appservices are the registered application services, asClient
	// reaches them.
	appservices *appservice.Registry
	asClient    *appservice.Client
}

// open makes the data directory, loads the signing key and opens the
// database: what every service is built over.
func open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	key, created, err := signing.LoadOrGenerate(cfg.SigningKeyPath())
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if created {
		log.Info("generated a new signing key", "path", cfg.SigningKeyPath(), "key_id", key.ID)
	}
	db, err := store.Open(ctx, cfg.DatabaseURL(), cfg.Database.MaxOpenConns, store.Synchronous(cfg.Database.SQLiteSynchronous),
		store.CacheKiB(cfg.Memory.SQLiteCacheKiB))
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log, db: db, key: key, bound: map[string]net.Listener{}, fresh: &freshConns{conns: map[net.Conn]struct{}{}}}
	// One policy for every connection made on someone else's behalf.
	if s.outbound, err = outbound.New(cfg.Outbound.Deny, cfg.Outbound.Allow); err != nil {
		db.Close()
		return nil, fmt.Errorf("outbound: %w", err)
	}
	s.base, s.stopRequests = context.WithCancelCause(context.Background())
	return s, nil
}

// build makes every service, each handed its collaborators as it is
// built, in the order they depend on each other, then the HTTP servers
// and the list of background workers.
func (s *Server) build(ctx context.Context) error {
	var b built
	// The federation client comes first: the engine asks rooms' policy
	// servers through it.
	fedClient, err := s.newFederationClient()
	if err != nil {
		return err
	}
	b.fedClient = fedClient
	stream, err := s.buildEngine(ctx, &b)
	if err != nil {
		return err
	}
	s.newSender(b.fedClient)
	s.buildUsers(stream, &b)
	if err := s.buildAppServices(ctx, &b); err != nil {
		return err
	}
	if err := s.buildFederation(ctx, &b); err != nil {
		return err
	}
	if err := s.buildDelayed(ctx); err != nil {
		return err
	}
	s.buildHTTP(s.buildClientAPI(&b), &b)
	s.registerWorkers()
	return nil
}

// buildEngine makes the room engine, the bus, and the services that
// listen to it or serve the per-user streams /sync carries.
func (s *Server) buildEngine(ctx context.Context, b *built) (*rooms.StreamGen, error) {
	cfg, db := s.cfg, s.db
	// The blend of reputation feeds comes first, so that every service
	// built after it can be given it as its Enforcer; the feeds
	// themselves are followed by s.repFeeds, built with membership.
	s.repLog = reputation.NewLog(db, s.log, cfg.Reputation.DecisionRetention, cfg.Reputation.MaxDecisions)
	s.reputation = reputation.NewBlender(reputation.PolicyFromConfig(cfg.Reputation), s.repLog.Record)
	b.regTokens = regtokens.New(db)
	s.uia = uia.NewManager(db, cfg.Auth.UIASessionLifetime, b.regTokens.ReleaseExpired)
	// changes carries every change a listener may care about, new room
	// events and the stream's moves included; listeners subscribe to it
	// as they are built.
	changes := newBus()
	s.changes = changes
	stream, err := rooms.OpenStream(ctx, db, changes)
	if err != nil {
		return nil, err
	}
	// Presence hears of membership before the notifier wakes anyone: a
	// woken /sync reads its viewer's roommates from presence's cache.
	s.presence = presence.New(presence.Options{ServerName: cfg.ServerName, Enabled: cfg.Presence.Enabled, Store: db, Stream: stream, Log: s.log,
		MaxStatusMsgBytes: cfg.Limits.MaxStatusMsgBytes, Bus: changes})
	// The notifier holds wake-ups until push has counted an event's
	// notifications; it hears of new events first (then push, search,
	// guests), as Synapse notifies after computing push actions.
	pushed := push.NewProgress(stream.Current())
	s.notifier = clientsync.NewNotifier(stream, db, cfg.ServerName, changes, clientsync.WithGate(pushed, maxPushHold),
		clientsync.WithJoinedCacheBytes(cfg.Memory.SyncCacheMiB<<20/2), clientsync.WithRoomLists(s.presence))
	// Account data comes first: the engine's visibility check hides the
	// events of ignored users on every read path.
	s.acctData = accountdata.New(db, stream, changes, accountdata.WithIgnoredCacheBytes(cfg.Memory.LookupCacheMiB<<20))
	b.rep = s.reputationPoints()
	b.invites = membership.NewInviteRules(s.acctData)
	engineOpts := rooms.Options{
		ServerName: cfg.ServerName, KeyID: gomatrixserverlib.KeyID(s.key.ID), PrivateKey: s.key.Private,
		EventCacheBytes: cfg.Memory.EventCacheMiB << 20, StateCacheBytes: cfg.Memory.StateCacheMiB << 20, LookupCacheBytes: cfg.Memory.LookupCacheMiB << 20,
		DefaultVersion: cfg.Rooms.DefaultVersion, Ignored: s.acctData, Reputation: b.rep, PolicyFailOpen: cfg.Federation.PolicyServerFailOpen,
	}
	s.repUsers = reputation.NewUserFilters(reputation.WithExtentStore(db, s.log))
	engineOpts.UserReputation = s.repUsers
	if b.fedClient != nil {
		engineOpts.Policy = remote.NewPolicyClient(b.fedClient, cfg.ServerName, s.key, s.log)
	}
	s.engine = rooms.New(db, stream, changes, engineOpts)
	pushOpts := push.Options{ServerName: cfg.ServerName, Log: s.log, Bus: changes, MemberCacheBytes: cfg.Memory.StateCacheMiB << 20,
		UnreadCacheBytes: cfg.Memory.LookupCacheMiB << 20,
		HTTPClient:       push.GatewayClient(s.outbound), Limits: push.Limits(cfg.Limits.PushRules), Progress: pushed,
		MaxTagBytes: cfg.Limits.MaxAccountDataBytes, Invites: b.invites}
	if cfg.Rooms.ThreadSubscriptions {
		s.threadSubs = threadsubs.New(db, s.engine, s.notifier.Wake)
		pushOpts.ThreadSubscriptions = s.threadSubs
	}
	s.push = push.New(db, s.engine, s.acctData, pushOpts)
	s.indexer = search.NewIndexer(db, stream, s.log, changes)
	s.guests = guests.New(db, s.engine, s.log, changes)
	b.rels = relations.New(db, s.engine)
	b.render = clientevent.Renderer{Loader: s.engine, Relations: b.rels.Bundle, Filtered: s.engine.FilteredFor}
	s.typing = typing.New(stream, changes)
	s.receipts = receipts.New(db, s.engine, s.push, changes)
	b.dir = directory.New(s.engine, db, directory.WithReputation(b.rep), directory.WithUserReputation(s.repUsers))
	b.aliases = aliases.New(cfg.ServerName, db, s.engine, b.dir)
	return stream, nil
}

// buildUsers makes the end-to-end encryption service (which reaches
// other servers' users through the federation client and sender) and
// the accounts service over it.
func (s *Server) buildUsers(stream *rooms.StreamGen, b *built) {
	cfg := s.cfg
	keyOpts := keys.Options{ServerName: cfg.ServerName, Store: s.db, Stream: stream, Log: s.log, Members: s.engine, Bus: s.changes,
		MaxRetryInterval: cfg.Federation.MaxRetryInterval}
	if b.fedClient != nil {
		keyOpts.Federation = b.fedClient
		keyOpts.RemoteToDevice = remote.DirectToDevice(s.sender)
	}
	s.keys = keys.New(keyOpts)
	b.acc = accounts.New(s.db, accounts.Options{
		ServerName: cfg.ServerName, BcryptCost: cfg.Auth.BcryptCost,
		RefreshableTokenLifetime: cfg.Auth.RefreshableAccessTokenLifetime, LoginTokenLifetime: cfg.Auth.LoginTokenLifetime,
		DevicesRemoved: s.keys.DevicesRemoved, DeviceRenamed: s.keys.DeviceRenamed,
		Reserved: reservedLocalparts(cfg), Reputation: b.rep,
	})
	s.accounts = b.acc
}

// buildClientAPI makes the services only the client-server API uses, and
// the API over them.
func (s *Server) buildClientAPI(b *built) *clientapi.API {
	cfg, db, engine := s.cfg, s.db, s.engine
	// Erased users' events render redacted for later joiners; accounts
	// is built after the renderer's other parts.
	b.render.Erased = b.acc.ErasedUsers
	b.notices = servernotices.New(servernotices.Options{ServerName: cfg.ServerName, Config: cfg.ServerNotices, Rooms: engine,
		Store: db, Accounts: b.acc, AccountData: s.acctData, MaxTagBytes: cfg.Limits.MaxAccountDataBytes})
	syncer := clientsync.New(db, engine, s.notifier, b.render, clientsync.Sources{AccountData: s.acctData, Push: s.push, Typing: s.typing, Receipts: s.receipts,
		Presence: s.presence, Keys: s.keys, Invites: b.invites}, clientsync.WithCacheBytes(cfg.Memory.SyncCacheMiB<<20/2))
	members := membership.Options{ServerName: cfg.ServerName, Rooms: engine, Store: db, Accounts: b.acc, Invites: b.invites, Reputation: b.rep}
	if b.remote != nil {
		members.Remote = b.remote
	}
	memberSvc := membership.New(members)
	b.members = memberSvc
	s.repFeeds = s.newReputationFeeds(memberSvc, b)
	var remoteSpaces directory.Remote
	if b.remote != nil {
		remoteSpaces = b.remote
	}
	var threadSubs slidingsync.ThreadSubs
	if s.threadSubs != nil {
		threadSubs = s.threadSubs
	}
	s.sliding = slidingsync.New(syncer, engine, db, b.render, threadSubs, slidingsync.WithRoomTypesCacheBytes(cfg.Memory.LookupCacheMiB<<20),
		slidingsync.WithBus(s.changes))
	clientDeps := clientapi.Deps{
		Config: cfg, Accounts: b.acc, UIA: s.uia, RegTokens: b.regTokens, Rooms: engine,
		Membership: memberSvc, Directory: b.dir, Spaces: directory.NewSpaces(b.dir, cfg.ServerName, remoteSpaces), Aliases: b.aliases,
		Filters: filter.NewService(db, cfg.Limits.MaxFilterBytes), Relations: b.rels,
		Upgrades: roomupgrade.New(roomupgrade.Options{ServerName: cfg.ServerName, Rooms: engine, Aliases: b.aliases, Directory: b.dir,
			Profile: memberSvc.MemberProfile}),
		Sync: syncer, Render: b.render, Keys: s.keys, SlidingSync: s.sliding,
		AccountData: s.acctData, Push: s.push, Reports: reports.New(reports.Options{ServerName: cfg.ServerName, Store: db, Rooms: engine, Users: b.acc,
			ForwardToModerators: cfg.Reports.ForwardToModerators, Notices: b.notices, Log: s.log}), Typing: s.typing, Receipts: s.receipts, Presence: s.presence,
		Media:  s.media,
		Search: search.New(db, engine, s.indexer), Users: search.NewUsers(db, cfg.ServerName, cfg.UserDirectory.SearchAllUsers, search.WithReputation(b.rep)),
		Delayed: s.delayed, ThreadSubs: s.threadSubs,
		AppServices: b.appservices, AppServiceClient: b.asClient,
	}
	if b.remote != nil {
		clientDeps.Federation = b.remote
	}
	return clientapi.New(clientDeps)
}

// buildHTTP makes the routers, the rate limiter and the HTTP servers of
// the client, federation and metrics listeners.
func (s *Server) buildHTTP(client *clientapi.API, b *built) {
	cfg := s.cfg
	accAdmin := accounts.NewAdmin(s.db, b.acc)
	if cfg.RateLimit.Enabled {
		rl := cfg.RateLimit
		s.limiter = ratelimit.NewWithOverrides(map[string]ratelimit.Rule{
			clientapi.LimitLogin:       {PerSecond: rl.Login.PerSecond, Burst: rl.Login.Burst},
			clientapi.LimitRegister:    {PerSecond: rl.Register.PerSecond, Burst: rl.Register.Burst},
			clientapi.LimitMessage:     {PerSecond: rl.Message.PerSecond, Burst: rl.Message.Burst},
			clientapi.LimitReport:      {PerSecond: rl.Report.PerSecond, Burst: rl.Report.Burst},
			federation.LimitKeyQuery:   {PerSecond: rl.KeyQuery.PerSecond, Burst: rl.KeyQuery.Burst},
			clientapi.LimitDelayedMgmt: {PerSecond: rl.DelayedEventMgmt.PerSecond, Burst: rl.DelayedEventMgmt.Burst},
		}, rl.ExemptUsers, accAdmin)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	httpMetrics := httpapi.NewMetrics(reg)
	registerServerMetrics(reg, s.changes, s.db, s.notifier.Waiting,
		map[string]func() int64{"push": s.push.Backlog, "search": s.indexer.Backlog}, cfg.ServerName, s.log)

	deps := httpapi.Deps{Authenticate: client.Authenticator(), MaxBodyBytes: cfg.HTTP.MaxJSONBodyBytes, Logger: s.log}
	if s.limiter != nil {
		deps.Limiter = s.limiter
	}
	stack := httpapi.StackOptions{Logger: s.log, Metrics: httpMetrics, CORSOrigin: cfg.HTTP.CORSAllowedOrigin, TrustForwardedFor: cfg.HTTP.TrustForwardedFor}

	clientRouter := httpapi.NewRouter(deps)
	client.Register(clientRouter)
	admin.New(b.acc, b.regTokens, reports.NewAdmin(s.db, s.engine), cfg.Registration.SharedSecret).Register(clientRouter)
	admin.NewUsers(admin.UsersDeps{Accounts: b.acc, Admin: accAdmin, Members: b.members, Pushers: s.push,
		Uploads: media.NewUploads(s.media, s.db), AccountData: s.acctData, CrossSigning: s.keys}).Register(clientRouter)
	admin.NewServerNotices(b.notices).Register(clientRouter)
	roomAdminOpts := roomadmin.Options{ServerName: cfg.ServerName, Rooms: s.engine, Store: s.db, Membership: b.members,
		Aliases: b.aliases, Directory: b.dir, Accounts: b.acc, Log: s.log}
	if b.remote != nil {
		roomAdminOpts.Federation = b.remote
	}
	s.roomAdmin = roomadmin.New(roomAdminOpts)
	admin.NewRooms(s.roomAdmin, b.render, s.log).Register(clientRouter)
	repAdmin := admin.NewReputation(s.repFeeds)
	repAdmin.Register(clientRouter)
	repAdmin.RegisterExtent(clientRouter)
	admin.NewOperations(admin.OperationsDeps{Media: s.media, Destinations: remote.NewDestinations(cfg.ServerName, s.db, s.sender),
		Statistics: statistics.New(s.db), Version: Version, Log: s.log}).Register(clientRouter)
	fedRouter := httpapi.NewRouter(deps)
	b.fed.Register(fedRouter)
	if cfg.Listen.Federation == "" {
		// One listener serves both APIs, as behind a reverse proxy.
		b.fed.Register(clientRouter)
	}

	pace := httpapi.BodyPace{Grace: cfg.Limits.RequestBodyTimeout, MinRate: cfg.Limits.RequestBodyMinRate}
	s.clientRoutes = clientRouter.Routes
	s.client = s.newHTTPServer(httpapi.PaceBodies(httpapi.Wrap(showFilteredParam(clientRouter), stack), pace))
	if cfg.Listen.Federation != "" {
		s.federation = s.newHTTPServer(httpapi.PaceBodies(httpapi.Wrap(fedRouter, stack), pace))
	}
	if cfg.Listen.Metrics != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		s.metrics = s.newHTTPServer(mux)
	}
	s.serveRequestsFrom(s.client, s.federation, s.metrics)
}

// newFederationClient builds the client other servers are reached with;
// nil when federation is off. It comes before the services that use it
// (the engine, keys).
func (s *Server) newFederationClient() (fclient.FederationClient, error) {
	cfg := s.cfg
	if !cfg.Federation.Enabled {
		return nil, nil
	}
	// gomatrixserverlib logs through logrus, at info level per request;
	// only its warnings are worth an admin's attention.
	logrus.SetLevel(logrus.WarnLevel)
	roots, err := remote.CertPool(cfg.Federation.CAFile)
	if err != nil {
		return nil, err
	}
	// Synapse's federation_ip_range_blacklist: federation's own extra
	// ranges on top of the general policy.
	policy, err := s.outbound.With(cfg.Federation.Deny, nil)
	if err != nil {
		return nil, fmt.Errorf("federation.deny: %w", err)
	}
	return remote.NewClient(remote.ClientOptions{
		ServerName: cfg.ServerName, Key: s.key, Roots: roots, Addresses: cfg.Federation.Addresses,
		Timeout: cfg.Federation.RequestTimeout, UserAgent: "Myelin/" + Version, Policy: policy,
	}), nil
}

// newSender builds the sender of other servers' transactions (s.sender)
// over the federation client, after the engine it reads events from;
// none when federation is off.
func (s *Server) newSender(client fclient.FederationClient) {
	if client == nil {
		return
	}
	s.sender = remote.NewSender(remote.SenderOptions{
		ServerName: s.cfg.ServerName, Client: client, Rooms: s.engine, Store: s.db, Log: s.log,
		MaxRetryInterval: s.cfg.Federation.MaxRetryInterval, Bus: s.changes,
	})
}

// buildFederation makes the media repository and both halves of
// federation: when it is enabled, the remote side (key ring, room
// operations through other servers, outgoing EDUs) first, since media
// fetches through it, then the server-server API, which serves media.
func (s *Server) buildFederation(ctx context.Context, b *built) error {
	cfg := s.cfg
	oldKeys, err := signing.LoadOldKeys(cfg.OldSigningKeysPath())
	if err != nil {
		return fmt.Errorf("old signing keys: %w", err)
	}
	d := federation.Deps{ServerName: cfg.ServerName, Key: s.key, OldKeys: oldKeys, Version: Version, Log: s.log, Reputation: b.rep}
	var keyRing *gomatrixserverlib.KeyRing
	if b.fedClient != nil {
		keyRing = remote.NewKeyRing(cfg.ServerName, s.key, oldKeys, s.db, b.fedClient, s.trustedKeyServers())
		b.remote = remote.New(remote.Deps{ServerName: cfg.ServerName, Key: s.key, KeyRing: keyRing, Client: b.fedClient,
			KeyStore: s.db, Rooms: s.engine, Store: s.db, Sender: s.sender, Bus: s.changes, Keys: s.keys, Log: s.log,
			PartialStateJoins: cfg.Federation.PartialStateJoins, Reputation: b.rep, Media: s.repMedia})
		s.joinPresence = b.remote.JoinPresence(s.presence)
		s.joinDevices = b.remote.JoinDeviceLists(s.keys)
		s.partialState = b.remote.PartialStateResync()
	}
	mediaOpts := media.Options{ServerName: cfg.ServerName, Config: cfg.Media, Store: s.db, Dir: filepath.Join(cfg.DataDir, "media"), Log: s.log,
		Outbound: s.outbound, Reputation: b.rep}
	if b.remote != nil {
		mediaOpts.Remote = b.remote
	}
	if s.media, err = media.New(ctx, mediaOpts); err != nil {
		return err
	}
	if b.remote != nil {
		d.Client, d.KeyRing, d.Remote, d.Sender = b.fedClient, keyRing, b.remote, s.sender
		d.Rooms, d.Store, d.Media = s.engine, s.db, s.media
		d.Aliases, d.Profiles, d.Directory, d.OpenID = b.aliases, b.acc, b.dir, b.acc
		if len(b.appservices.All()) > 0 {
			asq := appservice.FederationQueries{Registry: b.appservices, Client: b.asClient, Profiles: b.acc, Aliases: b.aliases}
			d.Aliases, d.Profiles, d.AppServiceInvitees = asq, asq, asq
		}
		d.Keys, d.Typing, d.Receipts, d.Presence = s.keys, s.typing, s.receipts, s.presence
		d.Invites = b.invites
	}
	b.fed = federation.New(d)
	return nil
}

// trustedKeyServers are the configured notaries and their keys.
func (s *Server) trustedKeyServers() []remote.TrustedKeyServer {
	var notaries []remote.TrustedKeyServer
	for _, ks := range s.cfg.Federation.TrustedKeyServers {
		n := remote.TrustedKeyServer{ServerName: ks.ServerName, VerifyKeys: map[string]ed25519.PublicKey{}}
		for id, k := range ks.VerifyKeys {
			raw, _ := base64.RawStdEncoding.DecodeString(strings.TrimRight(k, "="))
			n.VerifyKeys[id] = raw
		}
		notaries = append(notaries, n)
	}
	return notaries
}

// newHTTPServer serves h. There is no WriteTimeout or ReadTimeout:
// either would cut long-polling /sync; request bodies are paced by
// httpapi.PaceBodies instead.
func (s *Server) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.cfg.Limits.RequestHeaderTimeout,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ConnState:         s.fresh.track,
	}
}

// connsPerIP is the per-address connection cap: off with rate limits
// off (benchmarks, conformance runs) and behind a reverse proxy, from
// which every connection comes.
func (s *Server) connsPerIP() int {
	if !s.cfg.RateLimit.Enabled || s.cfg.HTTP.TrustForwardedFor {
		return 0
	}
	return s.cfg.Limits.ConnectionsPerIP
}

// freshConns are connections that have not sent a request yet. Shutdown
// closes them at once: net/http would wait five seconds for each (other
// servers open federation connections ahead of use).
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func (f *freshConns) track(c net.Conn, st http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if st == http.StateNew {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
}

func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
	clear(f.conns)
}

// Start binds the listeners and starts serving and the background workers.
func (s *Server) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	type srv struct {
		name, addr string
		h          *http.Server
		tls        bool
	}
	all := []srv{{"client", s.cfg.Listen.Client, s.client, s.cfg.Listen.ClientTLS}}
	if s.federation != nil {
		all = append(all, srv{"federation", s.cfg.Listen.Federation, s.federation, s.cfg.TLSEnabled()})
	}
	if s.metrics != nil {
		all = append(all, srv{"metrics", s.cfg.Listen.Metrics, s.metrics, false})
	}
	if s.cfg.ACME.HTTPListen != "" {
		m, err := s.acmeManager()
		if err != nil {
			return err
		}
		s.acmeHTTP = s.newHTTPServer(m.HTTPHandler(nil))
		all = append(all, srv{"acme-http", s.cfg.ACME.HTTPListen, s.acmeHTTP, false})
	}
	for _, l := range all {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			s.abortStart()
			return fmt.Errorf("listen.%s: %w", l.name, err)
		}
		ln = httpapi.LimitConnsPerIP(ln, s.connsPerIP(), !l.tls)
		if l.tls {
			tc, err := s.tlsConfig()
			if err != nil {
				ln.Close()
				s.abortStart()
				return fmt.Errorf("listen.tls_cert: %w", err)
			}
			ln = tls.NewListener(ln, tc)
		}
		s.bound[l.name] = ln
		s.log.Info("listening", "listener", l.name, "addr", ln.Addr().String(), "tls", l.tls)
		s.wg.Add(1)
		go func(h *http.Server, ln net.Listener) {
			defer s.wg.Done()
			if err := h.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("listener stopped", "addr", ln.Addr().String(), "err", err)
			}
		}(l.h, ln)
	}
	s.commit.Start(ctx)
	s.workers.Start(ctx)
	releaseAfterStart()
	return nil
}

// pruneRedactions drops the original content of events redacted longer
// ago than the retention period, and the redactions that waited too long
// for their target, hourly.
func (s *Server) pruneRedactions(ctx context.Context) error {
	periodic.NowAndEvery(ctx, time.Hour, func() {
		if n, err := s.engine.PruneRedactions(ctx, s.db, s.cfg.Rooms.RedactionRetention); err != nil {
			s.log.Warn("pruning redacted events", "err", err)
		} else if n > 0 {
			s.log.Info("pruned redacted events", "count", n)
		}
		if n, err := s.engine.ExpireAwaitedRedactions(ctx); err != nil {
			s.log.Warn("expiring awaited redactions", "err", err)
		} else if n > 0 {
			s.log.Info("expired awaited redactions", "count", n)
		}
	})
	return nil
}

// abortStart stops the listeners a failed Start already serves. Closing
// the HTTP servers rather than their sockets leaves Shutdown nothing to
// close twice, whether or not Serve had taken the socket yet.
func (s *Server) abortStart() {
	for name, ln := range s.bound {
		// Closed here too: the goroutine that serves it may not have
		// handed it to its http.Server yet, whose Close would then miss
		// it until Serve starts.
		_ = ln.Close()
		switch name {
		case "client":
			s.client.Close()
		case "federation":
			s.federation.Close()
		case "metrics":
			s.metrics.Close()
		case "acme-http":
			s.acmeHTTP.Close()
		}
	}
}

// Addr returns the bound address of a listener ("client", "federation"
// or "metrics"), "" when it is not running; useful with port 0.
func (s *Server) Addr(name string) string {
	if ln, ok := s.bound[name]; ok {
		return ln.Addr().String()
	}
	return ""
}

// Engine is the room engine, for tests that play another server and
// inject events the way federation would.
func (s *Server) Engine() *rooms.Engine { return s.engine }

// ClientRoutes lists the client listener's routes ("METHOD pattern"),
// for tests that hold every route of a kind to one rule.
func (s *Server) ClientRoutes() []string { return s.clientRoutes() }

// Sender is the federation sender (nil without federation).
func (s *Server) Sender() *remote.Sender { return s.sender }

// PartialStateResync is the worker that completes rooms joined with
// partial state (nil without federation).
func (s *Server) PartialStateResync() *remote.PartialStateResync { return s.partialState }

// Accounts is the accounts service (tests lock, suspend and deactivate
// accounts through it).
func (s *Server) Accounts() *accounts.Service { return s.accounts }

// Keys exposes the end-to-end encryption service to tests.
func (s *Server) Keys() *keys.Service { return s.keys }

// AccountData is the account data service, whose Changes and
// IgnoredUsers /sync calls (and tests).
func (s *Server) AccountData() *accountdata.Service { return s.acctData }

// Push is the push service, whose UnreadCounts, CountsChanged and
// MarkRead /sync and receipts call (and tests).
func (s *Server) Push() *push.Service { return s.push }

// Presence is the presence service, whose SetFromSync and Changes /sync
// calls (and tests).
func (s *Server) Presence() *presence.Service { return s.presence }

// Notifier wakes long-polling /sync requests (tests wait for one to be
// waiting before they change what wakes it).
func (s *Server) Notifier() *clientsync.Notifier { return s.notifier }

// Media is the content repository (tests look at its storage).
func (s *Server) Media() *media.Service { return s.media }

// Run starts the server and serves until ctx is cancelled.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	start := time.Now()
	s, err := New(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := s.Start(); err != nil {
		s.db.Close()
		return err
	}
	log.Info("myelin started", "server_name", cfg.ServerName, "database", s.db.Engine(), "startup_ms", time.Since(start).Milliseconds())
	<-ctx.Done()
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	return s.Shutdown(shutdownCtx)
}

// NewLogger builds the slog logger the configuration asks for.
func NewLogger(cfg config.Log, out *os.File) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}

// reservedLocalparts are the localparts nobody may register: the
// reputation feeds' user's and the server notices system user's, so
// that no one can speak as them.
func reservedLocalparts(cfg *config.Config) []string {
	reserved := []string{cfg.Reputation.SystemMxidLocalpart}
	if lp := cfg.ServerNotices.SystemMxidLocalpart; lp != "" {
		reserved = append(reserved, lp)
	}
	return reserved
}
