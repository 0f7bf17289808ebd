package remote

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/signing"
	"github.com/myelin-chat/myelin/internal/store"
)

// KeyStore is where other servers' keys are cached.
type KeyStore interface {
	StoreServerKeys(ctx context.Context, keys []store.ServerKey) error
	ServerKeys(ctx context.Context, serverName string) ([]store.ServerKey, error)
	StoreServerKeyResponse(ctx context.Context, serverName string, validUntil int64, response []byte) error
	ServerKeyResponse(ctx context.Context, serverName string) (int64, []byte, error)
}

// keyClient fetches key answers: a server's own, or a notary's.
type keyClient interface {
	GetServerKeys(ctx context.Context, server spec.ServerName) (gomatrixserverlib.ServerKeys, error)
	LookupServerKeys(ctx context.Context, notary spec.ServerName, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) ([]gomatrixserverlib.ServerKeys, error)
}

// KeyValidity is how long other servers may cache this server's key
// answer before asking again (Synapse's key_refresh_interval default).
const KeyValidity = 24 * time.Hour

// TrustedKeyServer is a notary and the keys its answers must be signed with.
type TrustedKeyServer struct {
	ServerName string
	VerifyKeys map[string]ed25519.PublicKey
}

// NewKeyRing makes the key ring that verifies other servers' signatures:
// keys come from the cache (memory, then the database), else from the
// server itself, else from the trusted notaries; fetched answers are
// stored with their validity, and the server's own signed answer kept so
// that this server can act as a notary.
func NewKeyRing(serverName string, key signing.Key, oldKeys []signing.OldKey, st KeyStore, client keyClient, notaries []TrustedKeyServer) *gomatrixserverlib.KeyRing {
	db := &keyDB{serverName: serverName, key: key, oldKeys: oldKeys, st: st, mem: cache.NewLRU[gomatrixserverlib.PublicKeyLookupRequest, gomatrixserverlib.PublicKeyLookupResult](keyCacheSize)}
	fetchers := []gomatrixserverlib.KeyFetcher{&directFetcher{client: client, st: st}}
	for _, n := range notaries {
		keys := map[gomatrixserverlib.KeyID]ed25519.PublicKey{}
		for id, k := range n.VerifyKeys {
			keys[gomatrixserverlib.KeyID(id)] = k
		}
		fetchers = append(fetchers, &gomatrixserverlib.PerspectiveKeyFetcher{
			PerspectiveServerName: spec.ServerName(n.ServerName), PerspectiveServerKeys: keys, Client: client,
		})
	}
	return &gomatrixserverlib.KeyRing{KeyDatabase: db, KeyFetchers: fetchers}
}

// keyDB is the key ring's cache. It answers for this server's own key
// without asking anyone.
type keyDB struct {
	serverName string
	key        signing.Key
	oldKeys    []signing.OldKey
	st         KeyStore

	// mem holds keys of other servers in front of the database; any
	// server name can make us fetch and store keys, so it is bounded.
	mem *cache.LRU[gomatrixserverlib.PublicKeyLookupRequest, gomatrixserverlib.PublicKeyLookupResult]
}

// keyCacheSize is how many other servers' keys keyDB keeps in memory.
const keyCacheSize = 10_000

func (k *keyDB) FetcherName() string { return "key cache" }

func (k *keyDB) FetchKeys(ctx context.Context, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	loaded := map[spec.ServerName]bool{}
	for req, atTS := range reqs {
		if string(req.ServerName) == k.serverName {
			if string(req.KeyID) == k.key.ID {
				out[req] = gomatrixserverlib.PublicKeyLookupResult{
					VerifyKey:    gomatrixserverlib.VerifyKey{Key: spec.Base64Bytes(k.key.Public())},
					ValidUntilTS: spec.AsTimestamp(time.Now().Add(KeyValidity)),
				}
			}
			for _, old := range k.oldKeys {
				if string(req.KeyID) == old.ID {
					out[req] = gomatrixserverlib.PublicKeyLookupResult{
						VerifyKey: gomatrixserverlib.VerifyKey{Key: spec.Base64Bytes(old.Public)}, ExpiredTS: spec.Timestamp(old.ExpiredTS),
					}
				}
			}
			continue
		}
		res, ok := k.mem.Get(req)
		if !ok && !loaded[req.ServerName] {
			loaded[req.ServerName] = true
			keys, err := k.st.ServerKeys(ctx, string(req.ServerName))
			if err != nil {
				return nil, err
			}
			k.remember(keys)
			res, ok = k.mem.Get(req)
		}
		// A cached key no longer valid at the time asked for is left out,
		// so that the fetchers ask for a fresh answer.
		if ok && res.WasValidAt(atTS, gomatrixserverlib.StrictValiditySignatureCheck) {
			out[req] = res
		}
	}
	return out, nil
}

func (k *keyDB) remember(keys []store.ServerKey) {
	for _, sk := range keys {
		raw, err := base64.RawStdEncoding.DecodeString(sk.VerifyKey)
		if err != nil {
			continue
		}
		k.mem.Put(gomatrixserverlib.PublicKeyLookupRequest{ServerName: spec.ServerName(sk.ServerName), KeyID: gomatrixserverlib.KeyID(sk.KeyID)},
			gomatrixserverlib.PublicKeyLookupResult{
				VerifyKey:    gomatrixserverlib.VerifyKey{Key: raw},
				ValidUntilTS: spec.Timestamp(sk.ValidUntilTS),
				ExpiredTS:    spec.Timestamp(sk.ExpiredTS),
			})
	}
}

func (k *keyDB) StoreKeys(ctx context.Context, results map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult) error {
	keys := make([]store.ServerKey, 0, len(results))
	for req, res := range results {
		if string(req.ServerName) == k.serverName {
			continue
		}
		keys = append(keys, store.ServerKey{
			ServerName: string(req.ServerName), KeyID: string(req.KeyID),
			VerifyKey:    base64.RawStdEncoding.EncodeToString(res.Key),
			ValidUntilTS: int64(res.ValidUntilTS), ExpiredTS: int64(res.ExpiredTS),
		})
	}
	if err := k.st.StoreServerKeys(ctx, keys); err != nil {
		return err
	}
	k.remember(keys)
	return nil
}

// directFetcher asks a server for its own keys and keeps its signed
// answer for the notary endpoint.
type directFetcher struct {
	client keyClient
	st     KeyStore
}

func (d *directFetcher) FetcherName() string { return "direct" }

func (d *directFetcher) FetchKeys(ctx context.Context, reqs map[gomatrixserverlib.PublicKeyLookupRequest]spec.Timestamp) (map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult, error) {
	out := map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult{}
	servers := map[spec.ServerName]bool{}
	for req := range reqs {
		servers[req.ServerName] = true
	}
	var errs []error
	for server := range servers {
		keys, err := d.fetch(ctx, server)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		addServerKeys(keys, out)
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func (d *directFetcher) fetch(ctx context.Context, server spec.ServerName) (gomatrixserverlib.ServerKeys, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	keys, err := d.client.GetServerKeys(ctx, server)
	if err != nil {
		return keys, err
	}
	// The answer must be for the server asked, still valid, and signed by
	// every key it lists.
	if checks, _ := gomatrixserverlib.CheckKeys(server, time.Now(), keys); !checks.AllChecksOK {
		return keys, fmt.Errorf("federation: key answer of %s failed its checks", server)
	}
	if len(keys.Raw) > 0 {
		if err := d.st.StoreServerKeyResponse(ctx, string(server), int64(keys.ValidUntilTS), keys.Raw); err != nil {
			return keys, err
		}
	}
	return keys, nil
}

// CanFetchKeys reports whether the client can fetch other servers' keys
// (the notary endpoints answer only from the cache otherwise).
func (f *Service) CanFetchKeys() bool {
	_, ok := f.d.Client.(keyClient)
	return ok
}

// FetchServerKeys asks a server for its own keys, checks the answer and
// keeps it for the notary endpoints (server-server spec "Querying Keys
// Through Another Server"), bypassing the key ring's cache.
func (f *Service) FetchServerKeys(ctx context.Context, server string) (gomatrixserverlib.ServerKeys, error) {
	client, ok := f.d.Client.(keyClient)
	if !ok {
		return gomatrixserverlib.ServerKeys{}, errors.New("federation: the client cannot fetch keys")
	}
	return (&directFetcher{client: client, st: f.d.KeyStore}).fetch(ctx, spec.ServerName(server))
}

func addServerKeys(keys gomatrixserverlib.ServerKeys, out map[gomatrixserverlib.PublicKeyLookupRequest]gomatrixserverlib.PublicKeyLookupResult) {
	for id, k := range keys.VerifyKeys {
		out[gomatrixserverlib.PublicKeyLookupRequest{ServerName: keys.ServerName, KeyID: id}] =
			gomatrixserverlib.PublicKeyLookupResult{VerifyKey: k, ValidUntilTS: keys.ValidUntilTS}
	}
	for id, k := range keys.OldVerifyKeys {
		out[gomatrixserverlib.PublicKeyLookupRequest{ServerName: keys.ServerName, KeyID: id}] =
			gomatrixserverlib.PublicKeyLookupResult{VerifyKey: k.VerifyKey, ExpiredTS: k.ExpiredTS}
	}
}
