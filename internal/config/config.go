// Package config holds Myelin's configuration: defaults that let `myelin serve`
// start with no file at all, an optional YAML file, and MYELIN_* environment
// overrides so that scripts and test harnesses never have to write YAML.
package config

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/myelin-chat/myelin/internal/outbound"
)

// Config is the whole server configuration. Field names follow the YAML keys.
type Config struct {
	ServerName   string       `yaml:"server_name"`
	DataDir      string       `yaml:"data_dir"`
	SigningKey   string       `yaml:"signing_key_path"`
	Database     Database     `yaml:"database"`
	Listen       Listen       `yaml:"listen"`
	WellKnown    WellKnown    `yaml:"well_known"`
	Registration Registration `yaml:"registration"`
	Auth         Auth         `yaml:"auth"`
	HTTP         HTTP         `yaml:"http"`
	RateLimit    RateLimit    `yaml:"rate_limit"`
	Rooms        Rooms        `yaml:"rooms"`
	Federation   Federation   `yaml:"federation"`
	Presence     Presence     `yaml:"presence"`
	Media        Media        `yaml:"media"`
	// Outbound limits where the server connects on others' behalf.
	Outbound Outbound `yaml:"outbound"`
	// UserDirectory tunes /user_directory/search.
	UserDirectory UserDirectory `yaml:"user_directory"`
	// ServerNotices configures the server-notices rooms the admin API's
	// send_server_notice writes to.
	ServerNotices ServerNotices `yaml:"server_notices"`
	// Reputation configures the reputation feeds the server subscribes
	// to and enforces (internal/reputation).
	Reputation Reputation `yaml:"reputation"`
	// AppServices lists the application services' registration files.
	AppServices AppServices `yaml:"appservices"`
	Log         Log         `yaml:"log"`
	// Limits bound what one client may cost the server.
	Limits Limits `yaml:"limits"`
	// Reports configures what happens to users' reports besides reaching
	// the admins.
	Reports Reports `yaml:"reports"`
	// ACME obtains and renews the TLS certificate (acme.go).
	ACME ACME `yaml:"acme"`
	// Memory bounds the caches and the heap (memory.go).
	Memory Memory `yaml:"memory"`
}

// Reports configures users' reports of content.
type Reports struct {
	// ForwardToModerators also sends each report of an event, as a server
	// notice, to the local moderators of its room (issue 17 item 5);
	// needs server_notices.system_mxid_localpart.
	ForwardToModerators bool `yaml:"forward_to_moderators"`
}

// Limits bound what one client may cost the server: the connections it
// holds, how slowly it may send, and the objects users store that later
// work iterates over (every event runs through push rules, every /sync
// through a filter and the account data).
type Limits struct {
	// ConnectionsPerIP caps the connections one address holds at once,
	// as a reverse proxy's limit_conn would; more are answered 429 and
	// closed. 0 turns it off; so does rate_limit.enabled: false, and
	// http.trust_forwarded_for (every connection comes from the proxy,
	// which must limit instead).
	ConnectionsPerIP int `yaml:"connections_per_ip"`
	// RequestHeaderTimeout bounds the time to send a request's headers.
	RequestHeaderTimeout time.Duration `yaml:"request_header_timeout"`
	// RequestBodyTimeout and RequestBodyMinRate bound how slowly a body
	// may arrive: it must be complete within RequestBodyTimeout plus one
	// second per RequestBodyMinRate bytes received (so a large upload on
	// a slow but steady link is not cut). 0 turns it off.
	RequestBodyTimeout time.Duration  `yaml:"request_body_timeout"`
	RequestBodyMinRate int64          `yaml:"request_body_min_rate"`
	PushRules          PushRuleLimits `yaml:"push_rules"`
	// MaxFilterBytes bounds a filter (POST /filter, or inline in /sync).
	MaxFilterBytes int `yaml:"max_filter_bytes"`
	// MaxAccountDataBytes bounds one account data object, and a room's
	// tags together.
	MaxAccountDataBytes int `yaml:"max_account_data_bytes"`
	// MaxStatusMsgBytes bounds a presence status_msg.
	MaxStatusMsgBytes int `yaml:"max_status_msg_bytes"`
}

// PushRuleLimits bound the push rules a user may store; rules over them
// stored earlier are left out of evaluation.
type PushRuleLimits struct {
	MaxRules         int `yaml:"max_rules"`
	MaxConditions    int `yaml:"max_conditions"`
	MaxPatternLength int `yaml:"max_pattern_length"`
}

// UserDirectory decides whom /user_directory/search finds.
type UserDirectory struct {
	// SearchAllUsers finds every local user, not only those who share a
	// room with the searcher or are in a public room (Synapse's
	// user_directory.search_all_users, off by default).
	SearchAllUsers bool `yaml:"search_all_users"`
}

// ServerNotices is Synapse's server_notices section: notices are off
// unless SystemMxidLocalpart names the system user who sends them.
type ServerNotices struct {
	SystemMxidLocalpart   string `yaml:"system_mxid_localpart"`
	SystemMxidDisplayName string `yaml:"system_mxid_display_name"`
	SystemMxidAvatarURL   string `yaml:"system_mxid_avatar_url"`
	RoomName              string `yaml:"room_name"`
	RoomTopic             string `yaml:"room_topic"`
	RoomAvatarURL         string `yaml:"room_avatar_url"`
	// AutoJoin joins the user to a new notices room instead of inviting them.
	AutoJoin bool `yaml:"auto_join"`
}

// Database selects and tunes the store.
type Database struct {
	// URL is postgres://... for PostgreSQL, or a file path (optionally
	// file:...) for SQLite. Empty means <data_dir>/myelin.db.
	URL          string `yaml:"url"`
	MaxOpenConns int    `yaml:"max_open_conns"`
	// SQLiteSynchronous is SQLite's synchronous pragma: "full" (an
	// acknowledged event survives a power cut) or "normal" (faster; a
	// power cut may lose the last acknowledged commits).
	SQLiteSynchronous string `yaml:"sqlite_synchronous"`
}

// Listen names the sockets the server binds.
type Listen struct {
	Client     string `yaml:"client"`
	Federation string `yaml:"federation"`
	Metrics    string `yaml:"metrics"`
	// Pprof serves Go's runtime profiles (/debug/pprof/: heap,
	// goroutines, CPU) for finding where memory and CPU go. Loopback
	// only: profiles show request data and a CPU profile costs CPU.
	Pprof   string `yaml:"pprof"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// ClientTLS serves the client listener over TLS too, with the same
	// certificate: a server on the internet without a reverse proxy
	// serves both APIs on one TLS listener (443).
	ClientTLS bool `yaml:"client_tls"`
}

// WellKnown controls the /.well-known/matrix documents.
type WellKnown struct {
	// ClientBaseURL is m.homeserver.base_url; empty means http://<client listen>.
	ClientBaseURL string `yaml:"client_base_url"`
	// Server is m.server; empty means the federation listener's port on server_name.
	Server string `yaml:"server"`
	// RTCFoci are the MatrixRTC transports (MSC4143) published as
	// rtc_foci in /.well-known/matrix/client and answered by
	// /rtc/transports (matrixrtc.go).
	RTCFoci []RTCFocus `yaml:"rtc_foci"`
}

// Registration decides who may create accounts.
type Registration struct {
	// Open allows anyone to register with m.login.dummy.
	Open bool `yaml:"open"`
	// RequireToken makes registration (open or not) need an
	// m.login.registration_token stage; tokens are managed by admins.
	RequireToken bool `yaml:"require_token"`
	// SharedSecret enables Synapse's /_synapse/admin/v1/register.
	SharedSecret string `yaml:"shared_secret"`
	AllowGuests  bool   `yaml:"allow_guests"`
}

// Auth tunes credentials and sessions.
type Auth struct {
	BcryptCost int `yaml:"bcrypt_cost"`
	// RefreshableAccessTokenLifetime is how long an access token issued with
	// a refresh token lives (Synapse: refreshable_access_token_lifetime).
	RefreshableAccessTokenLifetime time.Duration `yaml:"refreshable_access_token_lifetime"`
	// LoginTokenLifetime bounds m.login.token tokens from /login/get_token.
	LoginTokenLifetime time.Duration `yaml:"login_token_lifetime"`
	// UIASessionLifetime bounds a User-Interactive Auth session.
	UIASessionLifetime time.Duration `yaml:"uia_session_lifetime"`
}

// HTTP holds limits every endpoint inherits.
type HTTP struct {
	MaxJSONBodyBytes int64 `yaml:"max_json_body_bytes"`
	// CORSAllowedOrigin is sent as Access-Control-Allow-Origin.
	CORSAllowedOrigin string `yaml:"cors_allowed_origin"`
	// TrustForwardedFor takes the client address from X-Forwarded-For,
	// for servers behind a reverse proxy.
	TrustForwardedFor bool `yaml:"trust_forwarded_for"`
}

// RateLimit configures token buckets per client (user when authenticated,
// IP address otherwise).
type RateLimit struct {
	Enabled  bool            `yaml:"enabled"`
	Login    RateLimitBucket `yaml:"login"`
	Register RateLimitBucket `yaml:"register"`
	Message  RateLimitBucket `yaml:"message"`
	// Report is reports of events, rooms and users (Synapse's rc_reports).
	Report RateLimitBucket `yaml:"report"`
	// KeyQuery is per IP address on the notary endpoints
	// (/_matrix/key/v2/query), which anyone may call unauthenticated and
	// which fetch keys from the servers named.
	KeyQuery RateLimitBucket `yaml:"key_query"`
	// DelayedEventMgmt is restarts, sends and cancels of delayed events
	// and their listing (Synapse's rc_delayed_event_mgmt).
	DelayedEventMgmt RateLimitBucket `yaml:"delayed_event_mgmt"`
	// ExemptUsers are never limited (bots, bridges).
	ExemptUsers []string `yaml:"exempt_users"`
}

// RateLimitBucket is a token bucket: PerSecond refill rate, Burst capacity.
type RateLimitBucket struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// Rooms holds room defaults.
type Rooms struct {
	// DefaultVersion is the version of rooms created without one: 12, the
	// newest stable version (what Synapse has defaulted to since 1.136).
	// Harnesses that federate with servers predating version 12 set 11.
	DefaultVersion string `yaml:"default_version"`
	// RedactionRetention is how long the original content of a redacted
	// event is kept (Synapse: redaction_retention_period, 7 days).
	RedactionRetention time.Duration `yaml:"redaction_retention"`
	// MaxEventDelayMS bounds an MSC4140 delayed event's delay (Synapse's
	// max_event_delay_duration); 0 turns delayed events off.
	MaxEventDelayMS int64 `yaml:"max_event_delay_ms"`
	// ThreadSubscriptions serves MSC4306 thread subscriptions and their
	// push rules, under which a thread reply notifies only users who
	// follow the thread. Off by default, as Synapse ships it behind an
	// experimental flag: clients that never subscribe (Element Web)
	// would lose every thread notification.
	ThreadSubscriptions bool `yaml:"thread_subscriptions"`
}

// Federation configures how the server talks to other servers.
type Federation struct {
	// Enabled turns the server-server API and outgoing federation on.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of certificate authorities trusted for
	// outgoing requests besides the system's (test networks, private CAs).
	CAFile string `yaml:"ca_file"`
	// Addresses maps server names to host:port, skipping discovery
	// (.well-known and SRV). Meant for tests and closed networks.
	Addresses map[string]string `yaml:"addresses"`
	// TrustedKeyServers are notaries asked for a server's keys when the
	// server cannot be asked itself (Synapse: trusted_key_servers).
	TrustedKeyServers []TrustedKeyServer `yaml:"trusted_key_servers"`
	// RequestTimeout bounds one outgoing request.
	RequestTimeout time.Duration `yaml:"request_timeout"`
	// MaxRetryInterval caps the back-off between attempts to deliver to
	// an unreachable server.
	MaxRetryInterval time.Duration `yaml:"max_retry_interval"`
	// PartialStateJoins joins remote rooms with partial state (send_join
	// with omit_members, MSC3706/MSC3902): the room is usable at once and
	// its full state fetched in the background, as Synapse does.
	PartialStateJoins bool `yaml:"partial_state_joins"`
	// Deny are CIDRs never connected to for federation, besides
	// outbound.deny and the built-in ranges (Synapse:
	// federation_ip_range_blacklist); outbound.allow still exempts.
	Deny []string `yaml:"deny"`
	// PolicyServerFailOpen decides what happens to an event when the
	// policy server of its room (MSC4284, m.room.policy) cannot be
	// reached: sent or accepted without its signature (true), or refused
	// and soft-failed (false, Synapse's behaviour). A policy server that
	// answers and refuses an event is obeyed either way.
	PolicyServerFailOpen bool `yaml:"policy_server_fail_open"`
}

// Outbound is the policy of every connection made on someone else's
// behalf: federation, remote media, URL previews, push gateways. The
// built-in list (loopback, private, link-local, unique-local, CGNAT,
// multicast, reserved, documentation ranges and the IPv6 forms wrapping
// IPv4) is always refused unless allowed.
type Outbound struct {
	// Deny are CIDRs refused besides the built-in ranges (Synapse:
	// ip_range_blacklist).
	Deny []string `yaml:"deny"`
	// Allow are CIDRs connected to although a deny list names them
	// (Synapse: ip_range_whitelist); test networks on loopback allow
	// 127.0.0.0/8 and ::1/128.
	Allow []string `yaml:"allow"`
}

// TrustedKeyServer is a notary and the keys its answers are signed with.
type TrustedKeyServer struct {
	ServerName string `yaml:"server_name"`
	// VerifyKeys maps key IDs (ed25519:...) to unpadded base64 public keys.
	VerifyKeys map[string]string `yaml:"verify_keys"`
}

// Presence configures online status tracking (spec "Presence").
type Presence struct {
	// Enabled tracks and shares users' presence. Off, as Synapse's
	// use_presence: false, everyone reads as offline, updates are accepted
	// and ignored, and no presence crosses federation.
	Enabled bool `yaml:"enabled"`
}

// Media configures the content repository (spec "Content repository").
type Media struct {
	// MaxUploadBytes is the largest upload accepted (Synapse:
	// max_upload_size, 50M).
	MaxUploadBytes int64 `yaml:"max_upload_bytes"`
	// MaxRemoteBytes is the largest file fetched from another server.
	MaxRemoteBytes int64 `yaml:"max_remote_bytes"`
	// MaxImagePixels bounds the images thumbnailed: larger ones are
	// refused from their header, before any decoding (Synapse:
	// max_image_pixels, 32M).
	MaxImagePixels int64 `yaml:"max_image_pixels"`
	// EnableAuthenticatedMedia freezes the unauthenticated
	// /_matrix/media/v3/download and /thumbnail endpoints: media stored
	// after this server version first started is only served through the
	// authenticated /_matrix/client/v1/media endpoints (Synapse:
	// enable_authenticated_media).
	EnableAuthenticatedMedia bool `yaml:"enable_authenticated_media"`
	// UnusedExpiry is how long an mxc:// URI from /create waits for its
	// upload (Synapse: unused_expiration_time).
	UnusedExpiry time.Duration `yaml:"unused_expiry"`
	// MaxPendingUploads caps a user's /create URIs still waiting for
	// their upload (Synapse: max_pending_media_uploads).
	MaxPendingUploads int `yaml:"max_pending_uploads"`
	// ThumbnailSizes are generated when an image is stored; other sizes
	// are made when asked for and kept (Synapse: thumbnail_sizes).
	ThumbnailSizes []ThumbnailSize `yaml:"thumbnail_sizes"`
	URLPreview     URLPreview      `yaml:"url_preview"`
}

// ThumbnailSize is one thumbnail made for every image.
type ThumbnailSize struct {
	Width  int `yaml:"width"`
	Height int `yaml:"height"`
	// Method is crop (fill the size exactly) or scale (fit within it).
	Method string `yaml:"method"`
}

// URLPreview configures /media/preview_url, which fetches arbitrary web
// pages for users and so must not reach the server's own network.
type URLPreview struct {
	// Enabled serves previews (Synapse: url_preview_enabled, off).
	Enabled bool `yaml:"enabled"`
	// MaxBytes bounds a fetched page or image (Synapse:
	// max_spider_size, 10M).
	MaxBytes int64 `yaml:"max_bytes"`
	// Timeout bounds one fetch, redirects included.
	Timeout time.Duration `yaml:"timeout"`
	// IPRangeWhitelist are CIDRs fetched even though they are private,
	// loopback or otherwise refused (Synapse: url_preview_ip_range_whitelist).
	IPRangeWhitelist []string `yaml:"ip_range_whitelist"`
}

// Log configures slog output.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Default returns the zero-setup configuration.
func Default() *Config {
	return &Config{
		ServerName: "localhost",
		DataDir:    "./myelin-data",
		Database:   Database{MaxOpenConns: 10, SQLiteSynchronous: "full"},
		Listen: Listen{
			Client: "127.0.0.1:8008",
		},
		Registration: Registration{Open: false},
		Auth: Auth{
			BcryptCost:                     12,
			RefreshableAccessTokenLifetime: 5 * time.Minute,
			LoginTokenLifetime:             2 * time.Minute,
			UIASessionLifetime:             15 * time.Minute,
		},
		WellKnown: WellKnown{RTCFoci: []RTCFocus{}},
		ACME:      ACME{DirectoryURL: LetsEncrypt},
		HTTP:      HTTP{MaxJSONBodyBytes: 10 << 20, CORSAllowedOrigin: "*"},
		RateLimit: RateLimit{
			Enabled: true,
			// Close to Synapse's defaults (rc_login.address, rc_registration,
			// rc_message).
			Login:    RateLimitBucket{PerSecond: 0.17, Burst: 3},
			Register: RateLimitBucket{PerSecond: 0.17, Burst: 3},
			Message:  RateLimitBucket{PerSecond: 0.2, Burst: 10},
			// Synapse's rc_reports.
			Report: RateLimitBucket{PerSecond: 1, Burst: 5},
			// A server using this one as its notary asks once per batch of
			// keys it lacks; a second's worth of bursts covers a join.
			KeyQuery: RateLimitBucket{PerSecond: 1, Burst: 10},
			// Synapse's rc_delayed_event_mgmt: Element Call restarts its
			// "leave" delayed event every few seconds per call.
			DelayedEventMgmt: RateLimitBucket{PerSecond: 1, Burst: 5},
			// Empty rather than nil, as default.yaml's "exempt_users: []" decodes.
			ExemptUsers: []string{},
		},
		Rooms: Rooms{DefaultVersion: "12", RedactionRetention: 7 * 24 * time.Hour, MaxEventDelayMS: 24 * 60 * 60 * 1000},
		Federation: Federation{
			Enabled: true, Addresses: map[string]string{}, TrustedKeyServers: []TrustedKeyServer{},
			RequestTimeout: 30 * time.Second, MaxRetryInterval: time.Hour, Deny: []string{},
			PartialStateJoins: true,
		},
		Outbound: Outbound{Deny: []string{}, Allow: []string{}},
		Presence: Presence{Enabled: true},
		Media: Media{
			MaxUploadBytes: 50 << 20, MaxRemoteBytes: 50 << 20, MaxImagePixels: 32_000_000,
			EnableAuthenticatedMedia: true, UnusedExpiry: 24 * time.Hour, MaxPendingUploads: 5,
			// The spec's (and Synapse's) suggested sizes.
			ThumbnailSizes: []ThumbnailSize{
				{32, 32, "crop"}, {96, 96, "crop"}, {320, 240, "scale"}, {640, 480, "scale"}, {800, 600, "scale"},
			},
			URLPreview: URLPreview{MaxBytes: 10 << 20, Timeout: 10 * time.Second, IPRangeWhitelist: []string{}},
		},
		ServerNotices: ServerNotices{RoomName: "Server Notices"},
		Reputation:    defaultReputation(),
		Log:           Log{Level: "info", Format: "text"},
		Memory:        defaultMemory(),
		Limits: Limits{
			ConnectionsPerIP:     256,
			RequestHeaderTimeout: 30 * time.Second,
			RequestBodyTimeout:   30 * time.Second,
			RequestBodyMinRate:   10 << 10,
			PushRules:            PushRuleLimits{MaxRules: 500, MaxConditions: 16, MaxPatternLength: 256},
			MaxFilterBytes:       64 << 10,
			MaxAccountDataBytes:  256 << 10,
			MaxStatusMsgBytes:    1024,
		},
	}
}

// Load builds the configuration: defaults, then the YAML file at path (if
// not empty), then the environment, then validation.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	cfg := Default()
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		// An empty file decodes to io.EOF: it simply sets nothing.
		if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if env == nil {
		env = os.LookupEnv
	}
	if err := cfg.applyEnv(env); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// EnvVars lists every MYELIN_* override, in the order the README documents them.
var EnvVars = []string{
	"MYELIN_SERVER_NAME", "MYELIN_DATA_DIR", "MYELIN_DATABASE_URL",
	"MYELIN_CLIENT_LISTEN", "MYELIN_FEDERATION_LISTEN", "MYELIN_METRICS_LISTEN",
	"MYELIN_TLS_CERT", "MYELIN_TLS_KEY", "MYELIN_CLIENT_TLS",
	"MYELIN_ACME_DOMAIN", "MYELIN_ACME_EMAIL", "MYELIN_ACME_DIRECTORY_URL", "MYELIN_ACME_CA_FILE", "MYELIN_ACME_HTTP_LISTEN", "MYELIN_REGISTRATION_SHARED_SECRET",
	"MYELIN_OPEN_REGISTRATION", "MYELIN_REGISTRATION_REQUIRES_TOKEN",
	"MYELIN_ALLOW_GUESTS", "MYELIN_RATE_LIMIT", "MYELIN_BCRYPT_COST",
	"MYELIN_LOG_LEVEL", "MYELIN_LOG_FORMAT", "MYELIN_PUBLIC_BASEURL",
	"MYELIN_FEDERATION", "MYELIN_FEDERATION_CA_FILE", "MYELIN_FEDERATION_ADDRESSES",
	"MYELIN_PRESENCE", "MYELIN_OUTBOUND_ALLOW", "MYELIN_OUTBOUND_DENY", "MYELIN_FEDERATION_DENY",
	"MYELIN_POLICY_SERVER_FAIL_OPEN", "MYELIN_SQLITE_SYNCHRONOUS", "MYELIN_DEFAULT_ROOM_VERSION",
	"MYELIN_SERVER_NOTICES_LOCALPART", "MYELIN_REPORTS_FORWARD_TO_MODERATORS",
	"MYELIN_REPUTATION_FEEDS", "MYELIN_MAX_EVENT_DELAY_MS", "MYELIN_THREAD_SUBSCRIPTIONS", "MYELIN_RTC_FOCI", "MYELIN_APPSERVICE_FILES",
	"MYELIN_REPUTATION_REPUBLISH_ALIAS", "MYELIN_REPUTATION_REPUBLISH_MODE",
	"MYELIN_PPROF_ADDR", "MYELIN_HEAP_FLOOR_MIB", "MYELIN_EVENT_CACHE_MIB", "MYELIN_SQLITE_CACHE_KIB",
	"MYELIN_STATE_CACHE_MIB", "MYELIN_SYNC_CACHE_MIB", "MYELIN_LOOKUP_CACHE_MIB",
	"MYELIN_DATABASE_MAX_OPEN_CONNS",
}

func (c *Config) applyEnv(env func(string) (string, bool)) error {
	str := func(name string, dst *string) {
		if v, ok := env(name); ok {
			*dst = v
		}
	}
	boolean := func(name string, dst *bool) error {
		v, ok := env(name)
		if !ok {
			return nil
		}
		b, err := parseBool(v)
		if err != nil {
			return fmt.Errorf("config: %s: %w", name, err)
		}
		*dst = b
		return nil
	}
	str("MYELIN_SERVER_NAME", &c.ServerName)
	str("MYELIN_DATA_DIR", &c.DataDir)
	str("MYELIN_DATABASE_URL", &c.Database.URL)
	str("MYELIN_SQLITE_SYNCHRONOUS", &c.Database.SQLiteSynchronous)
	str("MYELIN_CLIENT_LISTEN", &c.Listen.Client)
	str("MYELIN_FEDERATION_LISTEN", &c.Listen.Federation)
	str("MYELIN_METRICS_LISTEN", &c.Listen.Metrics)
	str("MYELIN_PPROF_ADDR", &c.Listen.Pprof)
	str("MYELIN_TLS_CERT", &c.Listen.TLSCert)
	str("MYELIN_TLS_KEY", &c.Listen.TLSKey)
	str("MYELIN_REGISTRATION_SHARED_SECRET", &c.Registration.SharedSecret)
	str("MYELIN_LOG_LEVEL", &c.Log.Level)
	str("MYELIN_LOG_FORMAT", &c.Log.Format)
	str("MYELIN_PUBLIC_BASEURL", &c.WellKnown.ClientBaseURL)
	str("MYELIN_FEDERATION_CA_FILE", &c.Federation.CAFile)
	str("MYELIN_DEFAULT_ROOM_VERSION", &c.Rooms.DefaultVersion)
	str("MYELIN_SERVER_NOTICES_LOCALPART", &c.ServerNotices.SystemMxidLocalpart)
	if v, ok := env("MYELIN_APPSERVICE_FILES"); ok {
		c.AppServices.Files = splitList(v)
	}
	str("MYELIN_REPUTATION_REPUBLISH_ALIAS", &c.Reputation.Republish.Alias)
	str("MYELIN_REPUTATION_REPUBLISH_MODE", &c.Reputation.Republish.Mode)
	if v, ok := env("MYELIN_REPUTATION_FEEDS"); ok {
		feeds, err := ParseReputationFeeds(v)
		if err != nil {
			return fmt.Errorf("config: MYELIN_REPUTATION_FEEDS: %w", err)
		}
		c.Reputation.Feeds = feeds
	}
	if v, ok := env("MYELIN_FEDERATION_ADDRESSES"); ok {
		// name=host:port,name=host:port
		c.Federation.Addresses = map[string]string{}
		for _, pair := range strings.Split(v, ",") {
			if pair = strings.TrimSpace(pair); pair == "" {
				continue
			}
			name, addr, ok := strings.Cut(pair, "=")
			if !ok {
				return fmt.Errorf("config: MYELIN_FEDERATION_ADDRESSES: want name=host:port, got %q", pair)
			}
			c.Federation.Addresses[name] = addr
		}
	}
	for name, dst := range map[string]*[]string{
		"MYELIN_OUTBOUND_ALLOW":  &c.Outbound.Allow,
		"MYELIN_OUTBOUND_DENY":   &c.Outbound.Deny,
		"MYELIN_FEDERATION_DENY": &c.Federation.Deny,
	} {
		if v, ok := env(name); ok {
			list := cidrList(v)
			if _, err := outbound.ParsePrefixes(list); err != nil {
				return fmt.Errorf("config: %s: %w", name, err)
			}
			*dst = list
		}
	}
	for name, dst := range map[string]*bool{
		"MYELIN_FEDERATION":                    &c.Federation.Enabled,
		"MYELIN_PRESENCE":                      &c.Presence.Enabled,
		"MYELIN_POLICY_SERVER_FAIL_OPEN":       &c.Federation.PolicyServerFailOpen,
		"MYELIN_OPEN_REGISTRATION":             &c.Registration.Open,
		"MYELIN_REGISTRATION_REQUIRES_TOKEN":   &c.Registration.RequireToken,
		"MYELIN_ALLOW_GUESTS":                  &c.Registration.AllowGuests,
		"MYELIN_REPORTS_FORWARD_TO_MODERATORS": &c.Reports.ForwardToModerators,
		"MYELIN_THREAD_SUBSCRIPTIONS":          &c.Rooms.ThreadSubscriptions,
		"MYELIN_CLIENT_TLS":                    &c.Listen.ClientTLS,
	} {
		if err := boolean(name, dst); err != nil {
			return err
		}
	}
	if v, ok := env("MYELIN_RATE_LIMIT"); ok {
		switch strings.ToLower(v) {
		case "off", "false", "0", "no":
			c.RateLimit.Enabled = false
		case "on", "true", "1", "yes":
			c.RateLimit.Enabled = true
		default:
			return fmt.Errorf("config: MYELIN_RATE_LIMIT: want on or off, got %q", v)
		}
	}
	c.applyACMEEnv(env)
	if err := c.applyMemoryEnv(env); err != nil {
		return err
	}
	if err := c.applyMatrixRTCEnv(env); err != nil {
		return err
	}
	if v, ok := env("MYELIN_BCRYPT_COST"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("config: MYELIN_BCRYPT_COST: %w", err)
		}
		c.Auth.BcryptCost = n
	}
	return nil
}

// cidrList splits a comma-separated list of CIDRs.
func cidrList(v string) []string {
	out := []string{}
	for _, c := range strings.Split(v, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("want true or false, got %q", v)
}

// Validate reports the first invalid field by its YAML name.
func (c *Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, args...))
	}
	if err := ValidateServerName(c.ServerName); err != nil {
		return bad("server_name", "%v", err)
	}
	if lp := c.ServerNotices.SystemMxidLocalpart; lp != "" {
		// The spec's user ID grammar: a-z, 0-9 and ._=-/+ only.
		if strings.Trim(lp, "abcdefghijklmnopqrstuvwxyz0123456789._=-/+") != "" || len(lp) > 200 {
			return bad("server_notices.system_mxid_localpart", "not a valid localpart: %q", lp)
		}
	}
	if c.Reports.ForwardToModerators && c.ServerNotices.SystemMxidLocalpart == "" {
		return bad("reports.forward_to_moderators", "needs server_notices.system_mxid_localpart, the user who sends the notices")
	}
	if err := c.Reputation.validate(); err != nil {
		return err
	}
	if c.DataDir == "" {
		return bad("data_dir", "must not be empty")
	}
	if u := c.Database.URL; u != "" && !strings.HasPrefix(u, "postgres://") && !strings.HasPrefix(u, "postgresql://") && strings.Contains(u, "://") {
		return bad("database.url", "want postgres://... or a SQLite file path, got %q", u)
	}
	if c.Database.MaxOpenConns < 1 {
		return bad("database.max_open_conns", "must be at least 1")
	}
	if m := c.Database.SQLiteSynchronous; m != "full" && m != "normal" {
		return bad("database.sqlite_synchronous", "want full or normal, got %q", m)
	}
	for field, addr := range map[string]string{
		"listen.client": c.Listen.Client, "listen.federation": c.Listen.Federation, "listen.metrics": c.Listen.Metrics,
		"listen.pprof": c.Listen.Pprof,
	} {
		if addr == "" {
			if field == "listen.client" {
				return bad(field, "must not be empty")
			}
			continue
		}
		if _, port, err := net.SplitHostPort(addr); err != nil {
			return bad(field, "want host:port, got %q", addr)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			return bad(field, "invalid port %q", port)
		}
	}
	if a := c.Listen.Pprof; a != "" && !isLoopback(a) {
		return bad("listen.pprof", "must be a loopback address (127.0.0.1:port, [::1]:port, localhost:port), got %q", a)
	}
	if (c.Listen.TLSCert == "") != (c.Listen.TLSKey == "") {
		return bad("listen.tls_cert", "tls_cert and tls_key must be set together")
	}
	if c.Listen.ClientTLS && !c.TLSEnabled() {
		return bad("listen.client_tls", "needs a certificate: set tls_cert and tls_key, or acme.domain")
	}
	for field, path := range map[string]string{"listen.tls_cert": c.Listen.TLSCert, "listen.tls_key": c.Listen.TLSKey} {
		if path != "" {
			if _, err := os.Stat(path); err != nil {
				return bad(field, "%v", err)
			}
		}
	}
	if c.Auth.BcryptCost < 4 || c.Auth.BcryptCost > 31 {
		return bad("auth.bcrypt_cost", "must be between 4 and 31, got %d", c.Auth.BcryptCost)
	}
	if c.Auth.RefreshableAccessTokenLifetime <= 0 {
		return bad("auth.refreshable_access_token_lifetime", "must be positive")
	}
	if c.Auth.LoginTokenLifetime <= 0 {
		return bad("auth.login_token_lifetime", "must be positive")
	}
	if c.Auth.UIASessionLifetime <= 0 {
		return bad("auth.uia_session_lifetime", "must be positive")
	}
	if c.HTTP.MaxJSONBodyBytes < 1024 {
		return bad("http.max_json_body_bytes", "must be at least 1024")
	}
	for name, b := range map[string]RateLimitBucket{"rate_limit.login": c.RateLimit.Login, "rate_limit.register": c.RateLimit.Register, "rate_limit.message": c.RateLimit.Message, "rate_limit.report": c.RateLimit.Report, "rate_limit.key_query": c.RateLimit.KeyQuery, "rate_limit.delayed_event_mgmt": c.RateLimit.DelayedEventMgmt} {
		if b.PerSecond <= 0 || b.Burst < 1 {
			return bad(name, "per_second must be positive and burst at least 1")
		}
	}
	if c.Rooms.RedactionRetention < 0 {
		return bad("rooms.redaction_retention", "must not be negative")
	}
	if err := c.validateACME(); err != nil {
		return err
	}
	if err := c.Memory.validate(bad); err != nil {
		return err
	}
	if err := c.validateMatrixRTC(); err != nil {
		return err
	}
	if !knownRoomVersion(c.Rooms.DefaultVersion) {
		return bad("rooms.default_version", "unknown room version %q", c.Rooms.DefaultVersion)
	}
	if err := c.Federation.validate(bad); err != nil {
		return err
	}
	if err := c.Media.validate(bad); err != nil {
		return err
	}
	for field, list := range map[string][]string{
		"outbound.allow": c.Outbound.Allow, "outbound.deny": c.Outbound.Deny, "federation.deny": c.Federation.Deny,
	} {
		if _, err := outbound.ParsePrefixes(list); err != nil {
			return bad(field, "%v", err)
		}
	}
	if err := c.Limits.validate(bad); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return bad("log.format", "want text or json, got %q", c.Log.Format)
	}
	return nil
}

func (l Limits) validate(bad func(field, format string, args ...any) error) error {
	if l.ConnectionsPerIP < 0 {
		return bad("limits.connections_per_ip", "must not be negative (0 is off)")
	}
	if l.RequestHeaderTimeout <= 0 {
		return bad("limits.request_header_timeout", "must be positive")
	}
	if l.RequestBodyTimeout < 0 || l.RequestBodyMinRate < 0 {
		return bad("limits.request_body_timeout", "request_body_timeout and request_body_min_rate must not be negative")
	}
	for field, n := range map[string]int{
		"limits.push_rules.max_rules": l.PushRules.MaxRules, "limits.push_rules.max_conditions": l.PushRules.MaxConditions,
		"limits.push_rules.max_pattern_length": l.PushRules.MaxPatternLength, "limits.max_filter_bytes": l.MaxFilterBytes,
		"limits.max_account_data_bytes": l.MaxAccountDataBytes, "limits.max_status_msg_bytes": l.MaxStatusMsgBytes,
	} {
		if n < 1 {
			return bad(field, "must be at least 1")
		}
	}
	return nil
}

func (f Federation) validate(bad func(field, format string, args ...any) error) error {
	if f.CAFile != "" {
		if _, err := os.Stat(f.CAFile); err != nil {
			return bad("federation.ca_file", "%v", err)
		}
	}
	for name, addr := range f.Addresses {
		if err := ValidateServerName(name); err != nil {
			return bad("federation.addresses", "%v", err)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad("federation.addresses", "want host:port for %s, got %q", name, addr)
		}
	}
	for _, ks := range f.TrustedKeyServers {
		if err := ValidateServerName(ks.ServerName); err != nil {
			return bad("federation.trusted_key_servers", "%v", err)
		}
		if len(ks.VerifyKeys) == 0 {
			return bad("federation.trusted_key_servers", "%s: verify_keys must name its keys", ks.ServerName)
		}
		for id, k := range ks.VerifyKeys {
			if raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(k, "=")); err != nil || len(raw) != 32 || !strings.HasPrefix(id, "ed25519:") {
				return bad("federation.trusted_key_servers", "%s: %s is not an ed25519 key", ks.ServerName, id)
			}
		}
	}
	if f.RequestTimeout <= 0 {
		return bad("federation.request_timeout", "must be positive")
	}
	if f.MaxRetryInterval < time.Second {
		return bad("federation.max_retry_interval", "must be at least 1s")
	}
	return nil
}

func (m Media) validate(bad func(field, format string, args ...any) error) error {
	if m.MaxUploadBytes < 1 {
		return bad("media.max_upload_bytes", "must be positive")
	}
	if m.MaxRemoteBytes < 1 {
		return bad("media.max_remote_bytes", "must be positive")
	}
	if m.MaxImagePixels < 1 {
		return bad("media.max_image_pixels", "must be positive")
	}
	if m.UnusedExpiry <= 0 {
		return bad("media.unused_expiry", "must be positive")
	}
	if m.MaxPendingUploads < 1 {
		return bad("media.max_pending_uploads", "must be at least 1")
	}
	for _, t := range m.ThumbnailSizes {
		if t.Width < 1 || t.Height < 1 || (t.Method != "crop" && t.Method != "scale") {
			return bad("media.thumbnail_sizes", "want a positive width and height and method crop or scale, got %+v", t)
		}
	}
	if m.URLPreview.MaxBytes < 1 {
		return bad("media.url_preview.max_bytes", "must be positive")
	}
	if m.URLPreview.Timeout <= 0 {
		return bad("media.url_preview.timeout", "must be positive")
	}
	if _, err := outbound.ParsePrefixes(m.URLPreview.IPRangeWhitelist); err != nil {
		return bad("media.url_preview.ip_range_whitelist", "%v", err)
	}
	return nil
}

func knownRoomVersion(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n >= 1 && n <= 12 && strconv.Itoa(n) == v
}

// ValidateServerName checks the grammar of the server-server spec's
// server name: a DNS name, IPv4 literal or bracketed IPv6 literal, with an
// optional port.
func ValidateServerName(name string) error {
	if name == "" {
		return errors.New("must not be empty")
	}
	host := name
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.HasSuffix(name, "]") {
		host = name[:i]
		// Digits only (port = 1*5DIGIT): Atoi would also take "+80".
		port := name[i+1:]
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 || len(port) > 5 || strings.ContainsAny(port, "+-") {
			return fmt.Errorf("invalid port in %q", name)
		}
	}
	if strings.HasPrefix(host, "[") {
		if !strings.HasSuffix(host, "]") || net.ParseIP(host[1:len(host)-1]) == nil {
			return fmt.Errorf("invalid IPv6 literal in %q", name)
		}
		return nil
	}
	if host == "" || len(host) > 255 {
		return fmt.Errorf("invalid host in %q", name)
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return fmt.Errorf("invalid character %q in %q", r, name)
		}
	}
	// No empty label ("a..b", ".a", "a."): Synapse's VALID_HOST_REGEX
	// refuses them too, and no resolver can look them up.
	if slices.Contains(strings.Split(host, "."), "") {
		return fmt.Errorf("empty label in %q", name)
	}
	return nil
}

// DatabaseURL resolves the effective database location.
func (c *Config) DatabaseURL() string {
	if c.Database.URL != "" {
		return c.Database.URL
	}
	return filepath.Join(c.DataDir, "myelin.db")
}

// SigningKeyPath resolves the signing key file.
func (c *Config) SigningKeyPath() string {
	if c.SigningKey != "" {
		return c.SigningKey
	}
	return filepath.Join(c.DataDir, "signing.key")
}

// OldSigningKeysPath is the file of retired verify keys, beside the
// signing key (written by "myelin rotate-key").
func (c *Config) OldSigningKeysPath() string {
	return filepath.Join(filepath.Dir(c.SigningKeyPath()), "old_signing_keys")
}

//go:embed default.yaml
var defaultYAML string

// DefaultYAML is the commented default configuration `myelin config` prints.
func DefaultYAML() string { return defaultYAML }

// isLoopback reports whether a host:port names a loopback host.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
