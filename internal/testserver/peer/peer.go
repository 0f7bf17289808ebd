// Package peer is a scripted homeserver for federation tests: a fake
// server with its own name, ed25519 key and certificate from a test
// network's CA, which holds rooms built and signed with gomatrixserverlib
// and serves only what the server-server spec guarantees a server
// serves (and which a test may switch off endpoint by endpoint, to show
// that Myelin needs no more than a strict Synapse would give it).
//
// A test makes the network, adds the peer, then starts the Myelin
// servers, so that they know the peer's address:
//
//	net := testserver.NewNetwork(t)
//	p := peer.New(t, net, "peer.test")
//	net.Start(t, engine, 1, nil)
//	room := p.CreateRoom(t)
//	p.Refuse(peer.State, http.StatusNotFound)
//
// Myelin users join the peer's rooms through make_join/send_join; the
// peer pushes events into Myelin with Send; what Myelin sends to it is
// added to its rooms.
package peer

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/testdb"
	"github.com/myelin-chat/myelin/internal/testserver"
)

// Endpoint names a family of endpoints the peer serves, for Refuse and
// Hits.
type Endpoint string

// The endpoints the peer serves.
const (
	Key              Endpoint = "key"                // GET /_matrix/key/v2/server
	Send             Endpoint = "send"               // PUT /send/{txnId}
	GetMissingEvents Endpoint = "get_missing_events" // POST /get_missing_events/{roomId}
	State            Endpoint = "state"              // GET /state/{roomId}
	StateIDs         Endpoint = "state_ids"          // GET /state_ids/{roomId}
	Event            Endpoint = "event"              // GET /event/{eventId}
	EventAuth        Endpoint = "event_auth"         // GET /event_auth/{roomId}/{eventId}
	Backfill         Endpoint = "backfill"           // GET /backfill/{roomId}
	MakeJoin         Endpoint = "make_join"          // GET /make_join/{roomId}/{userId}
	SendJoin         Endpoint = "send_join"          // PUT /v2/send_join/{roomId}/{eventId}
	MediaDownload    Endpoint = "media_download"     // GET /_matrix/federation/v1/media/download/{mediaId}
	LegacyMedia      Endpoint = "legacy_media"       // GET /_matrix/media/{v3,r0}/download/{serverName}/{mediaId}
	PolicySign       Endpoint = "policy_sign"        // POST /_matrix/policy/v1/sign (policy.go)
	Other            Endpoint = "other"              // anything else: 404 M_UNRECOGNIZED
)

// Peer is a running scripted homeserver.
type Peer struct {
	// Name is the peer's server name.
	Name  string
	KeyID gomatrixserverlib.KeyID
	Key   ed25519.PrivateKey
	// PolicyKey is the key the peer signs with as a policy server
	// (policy.go), apart from its server key as the spec advises.
	PolicyKey ed25519.PrivateKey

	t      testing.TB
	net    *testserver.Network
	client *http.Client
	txnID  atomic.Int64

	mu      sync.Mutex
	rooms   map[string]*Room
	refused map[Endpoint]int
	hits    map[Endpoint]int
	// delays, inFlight and maxInFlight: see Delay and MaxInFlight.
	delays      map[Endpoint]time.Duration
	inFlight    map[Endpoint]int
	maxInFlight map[Endpoint]int
	media       map[string]media
	keys        map[string]map[gomatrixserverlib.KeyID]ed25519.PublicKey
	// missingHook changes /get_missing_events answers (see
	// OnMissingEvents).
	missingHook func(events []json.RawMessage) []json.RawMessage
	// sendHook hears every PDU sent to the peer (see OnSend).
	sendHook func(pdu json.RawMessage)
	// stateIDsHook changes /state_ids answers (see OnStateIDs).
	stateIDsHook func(state, authChain []string) ([]string, []string)
	// devices holds the /user/devices answers per user (devices.go).
	devices map[string]json.RawMessage
	// hierarchies holds the /hierarchy answers per room (devices.go).
	hierarchies map[string][]byte
	// serversHook changes send_join's servers_in_room (see
	// OnServersInRoom).
	serversHook func(servers []string) []string
}

type media struct {
	contentType string
	data        []byte
}

// New starts a peer named name in net, which must not have started its
// Myelin servers yet (they learn the peer's address when they start).
// It stops when the test ends.
func New(t testing.TB, net *testserver.Network, name string) *Peer {
	t.Helper()
	host := net.AddHost(t, name)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, policyKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &Peer{
		Name: name, KeyID: "ed25519:peer", Key: priv, PolicyKey: policyKey, t: t, net: net, client: net.HTTPClient(),
		rooms: map[string]*Room{}, refused: map[Endpoint]int{}, hits: map[Endpoint]int{},
		media: map[string]media{}, keys: map[string]map[gomatrixserverlib.KeyID]ed25519.PublicKey{},
		devices: map[string]json.RawMessage{}, hierarchies: map[string][]byte{},
	}
	cert, err := tls.LoadX509KeyPair(host.CertFile, host.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", host.Addr, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: p.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

// HangUp, given to Refuse, closes the connection of every request for
// the endpoint without an answer: a server that cannot be reached.
const HangUp = -1

// Refuse makes the peer answer an endpoint with status and
// M_UNRECOGNIZED, as a server that does not serve it (HangUp: no
// answer at all); status 0 serves it again.
func (p *Peer) Refuse(e Endpoint, status int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if status == 0 {
		delete(p.refused, e)
		return
	}
	p.refused[e] = status
}

// Hits is how many requests for an endpoint the peer received, refused
// ones included.
func (p *Peer) Hits(e Endpoint) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[e]
}

// Delay makes the peer wait d before answering each request for an
// endpoint, as a server across a network would (0: at once), so that
// how many requests a caller keeps in flight shows.
func (p *Peer) Delay(e Endpoint, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.delays == nil {
		p.delays = map[Endpoint]time.Duration{}
	}
	p.delays[e] = d
}

// MaxInFlight is the most requests for an endpoint the peer was
// answering at once.
func (p *Peer) MaxInFlight(e Endpoint) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxInFlight[e]
}

// OnServersInRoom lets a test change the servers_in_room of every
// partial-state send_join answer (leave a server out, as a resident
// whose list is incomplete); nil serves them unchanged.
func (p *Peer) OnServersInRoom(f func(servers []string) []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serversHook = f
}

// OnMissingEvents lets a test change the events of every
// /get_missing_events answer (add invalid ones, drop some) before they
// are sent; nil serves them unchanged.
func (p *Peer) OnMissingEvents(f func(events []json.RawMessage) []json.RawMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.missingHook = f
}

// OnSend lets a test hear every PDU sent to the peer over /send, of its
// rooms or not (a room of a Myelin server it joined by hand, say); nil
// hears nothing.
func (p *Peer) OnSend(f func(pdu json.RawMessage)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sendHook = f
}

// OnStateIDs lets a test change every /state_ids answer (name events
// that do not exist, or IDs no event can have); nil serves them
// unchanged.
func (p *Peer) OnStateIDs(f func(state, authChain []string) ([]string, []string)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stateIDsHook = f
}

// AddMedia makes the peer hold mxc://<peer>/<mediaID>.
func (p *Peer) AddMedia(mediaID, contentType string, data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.media[mediaID] = media{contentType: contentType, data: data}
}

// UserID is @localpart:<peer>.
func (p *Peer) UserID(localpart string) string { return "@" + localpart + ":" + p.Name }

// Room returns a room the peer knows, nil when it does not.
func (p *Peer) Room(roomID string) *Room {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rooms[roomID]
}

// Send pushes PDUs to a Myelin server in one transaction (PUT /send) and
// returns the server's verdict per event ID ("" for accepted).
func (p *Peer) Send(t testing.TB, to *testserver.Server, pdus ...gomatrixserverlib.PDU) map[string]string {
	t.Helper()
	raws := make([]json.RawMessage, len(pdus))
	for i, pdu := range pdus {
		raws[i] = pdu.JSON()
	}
	return p.SendRaw(t, to, raws...)
}

// SendRaw is Send with the PDUs' JSON as given (malformed events).
func (p *Peer) SendRaw(t testing.TB, to *testserver.Server, raws ...json.RawMessage) map[string]string {
	t.Helper()
	body := map[string]any{"origin": p.Name, "origin_server_ts": time.Now().UnixMilli(), "pdus": raws, "edus": []any{}}
	txn := strconv.FormatInt(time.Now().UnixNano()+p.txnID.Add(1), 10)
	status, data := p.Request(t, to, http.MethodPut, "/_matrix/federation/v1/send/"+txn, body)
	if status != http.StatusOK {
		t.Fatalf("peer: send to %s: %d %s", to.Config.ServerName, status, data)
	}
	var resp struct {
		PDUs map[string]struct {
			Error string `json:"error"`
		} `json:"pdus"`
	}
	if err := json.Unmarshal(data, &resp); err != nil {
		t.Fatalf("peer: send answer %s: %v", data, err)
	}
	out := map[string]string{}
	for id, r := range resp.PDUs {
		out[id] = r.Error
	}
	return out
}

// Request sends a server-server request to a Myelin server, signed
// (X-Matrix) with the peer's key, and returns the status and body.
func (p *Peer) Request(t testing.TB, to *testserver.Server, method, path string, body any) (int, []byte) {
	t.Helper()
	return p.RequestTo(t, to.Config.ServerName, method, path, body)
}

// RequestTo is Request to any server of the network by name (another
// peer, say).
func (p *Peer) RequestTo(t testing.TB, to, method, path string, body any) (int, []byte) {
	t.Helper()
	req := fclient.NewFederationRequest(method, spec.ServerName(p.Name), spec.ServerName(to), path)
	if body != nil {
		if err := req.SetContent(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := req.Sign(spec.ServerName(p.Name), p.KeyID, p.Key); err != nil {
		t.Fatal(err)
	}
	hreq, err := req.HTTPRequest()
	if err != nil {
		t.Fatal(err)
	}
	hreq.URL.Scheme = "https"
	resp, err := p.client.Do(hreq)
	if err != nil {
		t.Fatalf("peer: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// serverKeys is the peer's /_matrix/key/v2/server answer, signed.
func (p *Peer) serverKeys() ([]byte, error) {
	pub := p.Key.Public().(ed25519.PublicKey)
	doc, err := json.Marshal(map[string]any{
		"server_name":     p.Name,
		"valid_until_ts":  time.Now().Add(24 * time.Hour).UnixMilli(),
		"verify_keys":     map[string]any{string(p.KeyID): map[string]string{"key": base64.RawStdEncoding.EncodeToString(pub)}},
		"old_verify_keys": map[string]any{},
	})
	if err != nil {
		return nil, err
	}
	return gomatrixserverlib.SignJSON(p.Name, p.KeyID, p.Key, doc)
}

// VerifyJSONs checks signatures of the servers that call the peer, with
// the keys they publish at /_matrix/key/v2/server (as a server without
// notaries does); it makes the peer a gomatrixserverlib.JSONVerifier.
func (p *Peer) VerifyJSONs(ctx context.Context, reqs []gomatrixserverlib.VerifyJSONRequest) ([]gomatrixserverlib.VerifyJSONResult, error) {
	out := make([]gomatrixserverlib.VerifyJSONResult, len(reqs))
	for i, r := range reqs {
		keys, err := p.keysOf(ctx, string(r.ServerName))
		if err != nil {
			out[i].Error = err
			continue
		}
		var sigs struct {
			Signatures map[string]map[gomatrixserverlib.KeyID]json.RawMessage `json:"signatures"`
		}
		if err := json.Unmarshal(r.Message, &sigs); err != nil {
			out[i].Error = err
			continue
		}
		out[i].Error = errors.New("peer: no signature with a known key")
		for id := range sigs.Signatures[string(r.ServerName)] {
			if pub, ok := keys[id]; ok {
				out[i].Error = gomatrixserverlib.VerifyJSON(string(r.ServerName), id, pub, r.Message)
				break
			}
		}
	}
	return out, nil
}

// keysOf fetches (once) the verify keys a server publishes.
func (p *Peer) keysOf(ctx context.Context, server string) (map[gomatrixserverlib.KeyID]ed25519.PublicKey, error) {
	p.mu.Lock()
	keys, ok := p.keys[server]
	p.mu.Unlock()
	if ok {
		return keys, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+server+"/_matrix/key/v2/server", nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	var doc struct {
		VerifyKeys map[gomatrixserverlib.KeyID]struct {
			Key spec.Base64Bytes `json:"key"`
		} `json:"verify_keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("peer: keys of %s: %w", server, err)
	}
	keys = map[gomatrixserverlib.KeyID]ed25519.PublicKey{}
	for id, k := range doc.VerifyKeys {
		keys[id] = ed25519.PublicKey(k.Key)
	}
	p.mu.Lock()
	p.keys[server] = keys
	p.mu.Unlock()
	return keys, nil
}

// writeJSON answers with a JSON body.
func writeJSON(w http.ResponseWriter, status int, body any) {
	data, err := json.Marshal(body)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"errcode":"M_UNKNOWN"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.Copy(w, bytes.NewReader(data))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"errcode": code, "error": msg})
}

// serverOf is the server name of a user ID.
func serverOf(userID string) string {
	_, server, _ := strings.Cut(userID, ":")
	return server
}

// EachEngine runs fn per database engine with a network of a peer named
// peer.test and n Myelin servers (hs1.test, ...), each changed by mutate
// (which may be nil).
func EachEngine(t *testing.T, n int, mutate func(i int, c *config.Config), fn func(t *testing.T, net *testserver.Network, p *Peer)) {
	for _, engine := range testdb.Engines() {
		t.Run(engine, func(t *testing.T) {
			net := testserver.NewNetwork(t)
			p := New(t, net, "peer.test")
			net.Start(t, engine, n, mutate)
			fn(t, net, p)
		})
	}
}
