package federation

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// The notary endpoints (server-server spec "Querying Keys Through
// Another Server"): this server hands on other servers' own signed key
// answers, adding its signature, so that a server that cannot reach
// them may trust their keys as far as it trusts this server. They are
// not X-Matrix signed: a server asks before it can verify anything.
//
// Since anyone may call them and each name asked may cost an outbound
// fetch, they are bounded three ways: a rate limit per IP address
// (LimitKeyQuery), at most MaxNotaryServers names per request, and a
// negative cache so that a server that could not be reached is not
// dialled again for notaryRetryAfter.

// LimitKeyQuery is the rate-limit bucket of the notary endpoints,
// configured in config.RateLimit.KeyQuery.
const LimitKeyQuery = "key_query"

// MaxNotaryServers is how many servers one POST may ask about. A server
// asks a notary for the keys it lacks to check what it is handling, such
// as the origins of one transaction (at most 50 PDUs, so 50 origins);
// twice that leaves room for the auth events they bring. More is a scan
// rather than a lookup, and a requester that really needs more can split
// its query: 400 M_TOO_LARGE, before anything is fetched.
const MaxNotaryServers = 100

// notaryRetryAfter is how long a server whose keys could not be fetched
// is not asked again on behalf of notary callers (its cached answer, if
// any, is served meanwhile). Short: a server that was restarting is
// soon asked again.
const notaryRetryAfter = time.Minute

func (a *API) registerNotary(rt *httpapi.Router) {
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/key/v2/query/{serverName}", Handler: a.queryKeysGet, RateLimit: LimitKeyQuery})
	// The key ID suffix is deprecated but still sent by old servers.
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/key/v2/query/{serverName}/{keyId}", Handler: a.queryKeysGet, RateLimit: LimitKeyQuery})
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: "/_matrix/key/v2/query", Handler: a.queryKeysPost, RateLimit: LimitKeyQuery})
}

// keyCriteria is what a request asks of one server's keys.
type keyCriteria map[string]struct {
	MinimumValidUntilTS int64 `json:"minimum_valid_until_ts"`
}

func (a *API) queryKeysGet(r *http.Request, _ *httpapi.Caller) (any, error) {
	var minValid int64
	if s := r.URL.Query().Get("minimum_valid_until_ts"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, mxerr.InvalidParam("minimum_valid_until_ts must be an integer")
		}
		minValid = n
	}
	var keyIDs []string
	if id := r.PathValue("keyId"); id != "" {
		keyIDs = []string{id}
	}
	return a.notaryAnswer(r.Context(), map[string]keyRequest{r.PathValue("serverName"): {keyIDs: keyIDs, minValid: minValid}})
}

func (a *API) queryKeysPost(r *http.Request, _ *httpapi.Caller) (any, error) {
	var body struct {
		ServerKeys map[string]keyCriteria `json:"server_keys"`
	}
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	if body.ServerKeys == nil {
		return nil, mxerr.BadJSON("server_keys must be an object")
	}
	if len(body.ServerKeys) > MaxNotaryServers {
		return nil, mxerr.TooLarge("At most %d servers may be asked at once", MaxNotaryServers).WithStatus(http.StatusBadRequest)
	}
	reqs := make(map[string]keyRequest, len(body.ServerKeys))
	for server, keys := range body.ServerKeys {
		var kr keyRequest
		for id, c := range keys {
			kr.keyIDs = append(kr.keyIDs, id)
			kr.minValid = max(kr.minValid, c.MinimumValidUntilTS)
		}
		reqs[server] = kr
	}
	return a.notaryAnswer(r.Context(), reqs)
}

// keyRequest is what is asked of one server: keys that must be in its
// answer (none: any) and how long the answer must stay valid.
type keyRequest struct {
	keyIDs   []string
	minValid int64
}

// notaryAnswer collects the answers; servers that cannot be reached and
// of which nothing is cached are left out, as the spec says.
func (a *API) notaryAnswer(ctx context.Context, reqs map[string]keyRequest) (any, error) {
	out := []json.RawMessage{}
	for server, kr := range reqs {
		raw, err := a.serverKeyAnswer(ctx, server, kr)
		if err != nil {
			a.d.Log.Debug("notary: no key answer", "server", server, "err", err)
			continue
		}
		out = append(out, raw)
	}
	return map[string]any{"server_keys": out}, nil
}

// serverKeyAnswer is one server's signed key answer, co-signed by this
// server: this server's own answer as /key/v2/server gives it; another's
// from the cache while it satisfies the request (valid until the time
// asked, now by default, and listing the key IDs asked), else fetched
// from the server, else the cached one however old.
func (a *API) serverKeyAnswer(ctx context.Context, server string, kr keyRequest) (json.RawMessage, error) {
	if server == a.d.ServerName {
		own, err := a.serverKeys(nil, nil)
		if err != nil {
			return nil, err
		}
		return own.(json.RawMessage), nil
	}
	if _, _, ok := spec.ParseAndValidateServerName(spec.ServerName(server)); !ok {
		return nil, mxerr.InvalidParam("Invalid server name %q", server)
	}
	minValid := kr.minValid
	if minValid == 0 {
		minValid = a.now().UnixMilli()
	}
	validUntil, cached, cacheErr := a.d.Store.ServerKeyResponse(ctx, server)
	raw := cached
	if cacheErr != nil || validUntil < minValid || !listsKeys(cached, kr.keyIDs) {
		if a.d.Remote == nil || !a.d.Remote.CanFetchKeys() {
			return nil, mxerr.NotFound("Cannot fetch keys")
		}
		var err error
		if a.notaryFailures.recent(server, a.now()) {
			err = errRecentlyUnreachable
		} else {
			var keys gomatrixserverlib.ServerKeys
			keys, err = a.d.Remote.FetchServerKeys(ctx, server)
			if err == nil {
				raw = keys.Raw
			} else if ctx.Err() == nil {
				// A caller that gave up says nothing of the server.
				a.notaryFailures.add(server, a.now())
			}
		}
		if err != nil && cacheErr != nil {
			return nil, err
		}
	}
	return gomatrixserverlib.SignJSON(a.d.ServerName, gomatrixserverlib.KeyID(a.d.Key.ID), a.d.Key.Private, raw)
}

// listsKeys reports whether a key answer names every key ID asked, as a
// current or an old verify key.
func listsKeys(raw []byte, keyIDs []string) bool {
	if len(keyIDs) == 0 {
		return true
	}
	var doc struct {
		VerifyKeys    map[string]json.RawMessage `json:"verify_keys"`
		OldVerifyKeys map[string]json.RawMessage `json:"old_verify_keys"`
	}
	if json.Unmarshal(raw, &doc) != nil {
		return false
	}
	for _, id := range keyIDs {
		if doc.VerifyKeys[id] == nil && doc.OldVerifyKeys[id] == nil {
			return false
		}
	}
	return true
}

var errRecentlyUnreachable = errors.New("notary: server recently unreachable")

// maxNotaryFailures bounds the negative cache; past it an arbitrary
// entry makes room (the rate limit keeps the churn slow).
const maxNotaryFailures = 10000

// failureCache remembers until when servers are not to be fetched from.
// The zero value is ready to use.
type failureCache struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func (c *failureCache) recent(server string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.until[server]
	if ok && !now.Before(until) {
		delete(c.until, server)
		return false
	}
	return ok
}

func (c *failureCache) add(server string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.until == nil {
		c.until = map[string]time.Time{}
	}
	if _, ok := c.until[server]; !ok && len(c.until) >= maxNotaryFailures {
		for s, until := range c.until {
			if !now.Before(until) {
				delete(c.until, s)
			}
		}
		for s := range c.until {
			if len(c.until) < maxNotaryFailures {
				break
			}
			delete(c.until, s)
		}
	}
	c.until[server] = now.Add(notaryRetryAfter)
}
