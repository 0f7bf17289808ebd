package keys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/store"
)

// QueryResponse is the answer of /keys/query (client and federation).
type QueryResponse struct {
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys,omitempty"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys,omitempty"`
	UserSigningKeys map[string]json.RawMessage            `json:"user_signing_keys,omitempty"`
	Failures        map[string]any                        `json:"failures"`
}

func newQueryResponse() *QueryResponse {
	return &QueryResponse{DeviceKeys: map[string]map[string]json.RawMessage{}, MasterKeys: map[string]json.RawMessage{},
		SelfSigningKeys: map[string]json.RawMessage{}, UserSigningKeys: map[string]json.RawMessage{}, Failures: map[string]any{}}
}

// DefaultTimeout is how long a query or claim waits for other servers
// when the client gives no timeout (the spec's default, 10 seconds).
const DefaultTimeout = 10 * time.Second

// remoteCacheTTL bounds how long a cached remote device list is trusted
// without a device-list update: updates only come for users sharing a
// room with this server, so a list fetched for anyone else goes quietly
// out of date.
const remoteCacheTTL = time.Hour

// Query answers /keys/query for requester: local users from the
// database, other servers' users from their servers (or the cache), each
// server unreachable within timeout listed under failures.
func (s *Service) Query(ctx context.Context, requester string, want map[string][]string, timeout time.Duration) (*QueryResponse, error) {
	resp := newQueryResponse()
	remote := map[string]map[string][]string{}
	for user, devices := range want {
		if s.IsLocal(user) {
			if err := s.queryLocalUser(ctx, requester, user, devices, resp); err != nil {
				return nil, err
			}
			continue
		}
		server := serverOf(user)
		if server == "" {
			continue
		}
		if remote[server] == nil {
			remote[server] = map[string][]string{}
		}
		remote[server][user] = devices
	}
	if len(remote) == 0 {
		return resp, nil
	}
	eachServer(ctx, s.log, remote, timeout, resp.Failures, func(ctx context.Context, server string, users map[string][]string) (func(), error) {
		part := newQueryResponse()
		err := s.queryRemote(ctx, server, users, part)
		return func() { mergeQuery(resp, part) }, err
	})
	return resp, nil
}

// eachServer asks every server at once, within timeout (DefaultTimeout
// when 0): ask returns what to merge into the answer, which eachServer
// runs one at a time; a server that fails is listed in failures, with a
// message that names the server and nothing of the failure: dial errors
// (addresses, ports, what a name resolves to) go to the log only.
func eachServer[U any](ctx context.Context, log *slog.Logger, byServer map[string]U, timeout time.Duration, failures map[string]any,
	ask func(ctx context.Context, server string, users U) (merge func(), err error)) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for server, users := range byServer {
		wg.Add(1)
		go func() {
			defer wg.Done()
			merge, err := ask(ctx, server, users)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				log.DebugContext(ctx, "keys: remote server failed", "server", server, "err", err)
				failures[server] = map[string]any{"status": 503, "message": "Could not reach " + server}
				return
			}
			merge()
		}()
	}
	wg.Wait()
}

func mergeQuery(into, part *QueryResponse) {
	for u, d := range part.DeviceKeys {
		into.DeviceKeys[u] = d
	}
	for u, k := range part.MasterKeys {
		into.MasterKeys[u] = k
	}
	for u, k := range part.SelfSigningKeys {
		into.SelfSigningKeys[u] = k
	}
}

// QueryLocal answers a federation /user/keys/query: local users only,
// without user-signing keys (those are never shared with other servers).
func (s *Service) QueryLocal(ctx context.Context, want map[string][]string) (*QueryResponse, error) {
	resp := newQueryResponse()
	for user, devices := range want {
		if !s.IsLocal(user) {
			continue
		}
		if err := s.queryLocalUser(ctx, "", user, devices, resp); err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// queryLocalUser adds a local user's device keys and cross-signing keys,
// with the signatures uploaded for them merged in. The user-signing key
// and signatures made with it are only shown to the user themself.
func (s *Service) queryLocalUser(ctx context.Context, requester, user string, devices []string, resp *QueryResponse) error {
	rows, err := s.store.DeviceKeys(ctx, user, localpartOf(user), devices)
	if err != nil {
		return err
	}
	sigs, err := s.store.SignaturesOf(ctx, user)
	if err != nil {
		return err
	}
	byTarget := map[string][]store.Signature{}
	for _, sg := range sigs {
		byTarget[sg.TargetKey] = append(byTarget[sg.TargetKey], sg)
	}
	out := map[string]json.RawMessage{}
	for _, r := range rows {
		obj, err := withSignatures(r.KeyJSON, byTarget[r.DeviceID], func(store.Signature) bool { return true })
		if err != nil {
			return err
		}
		if r.DisplayName != nil {
			obj = setUnsigned(obj, "device_display_name", *r.DisplayName)
		}
		out[r.DeviceID] = obj
	}
	resp.DeviceKeys[user] = out
	cs, err := s.store.CrossSigningKeys(ctx, user)
	if err != nil {
		return err
	}
	visible := func(sg store.Signature) bool { return sg.SignerUser == user || sg.SignerUser == requester }
	for typ, js := range cs {
		var k crossSigningKey
		_ = json.Unmarshal([]byte(js), &k)
		obj, err := withSignatures(js, byTarget[k.publicKey()], visible)
		if err != nil {
			return err
		}
		switch typ {
		case master:
			resp.MasterKeys[user] = obj
		case selfSigning:
			resp.SelfSigningKeys[user] = obj
		case userSigning:
			if requester == user {
				resp.UserSigningKeys[user] = obj
			}
		}
	}
	return nil
}

// withSignatures adds uploaded signatures to a signed object.
func withSignatures(js string, sigs []store.Signature, keep func(store.Signature) bool) (json.RawMessage, error) {
	if len(sigs) == 0 {
		return json.RawMessage(js), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(js), &obj); err != nil {
		return nil, fmt.Errorf("keys: stored key object: %w", err)
	}
	all := map[string]map[string]string{}
	_ = json.Unmarshal(obj["signatures"], &all)
	for _, sg := range sigs {
		if !keep(sg) {
			continue
		}
		if all[sg.SignerUser] == nil {
			all[sg.SignerUser] = map[string]string{}
		}
		all[sg.SignerUser][sg.SignerKey] = sg.Signature
	}
	obj["signatures"], _ = json.Marshal(all)
	return json.Marshal(obj)
}

// setUnsigned sets unsigned.<key> of a JSON object.
func setUnsigned(raw json.RawMessage, key string, value any) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return raw
	}
	unsigned := map[string]any{}
	_ = json.Unmarshal(obj["unsigned"], &unsigned)
	unsigned[key] = value
	obj["unsigned"], _ = json.Marshal(unsigned)
	out, err := json.Marshal(obj)
	if err != nil {
		return raw
	}
	return out
}

// queryRemote answers for one server's users from the cache where it is
// fresh and asks the server for the rest. Whole device lists are fetched
// and cached; the devices asked for are picked from them.
func (s *Service) queryRemote(ctx context.Context, server string, users map[string][]string, resp *QueryResponse) error {
	var missing []string
	for user, devices := range users {
		l, err := s.store.RemoteDevices(ctx, user)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err == nil {
			fresh, err := s.cacheFresh(ctx, user, l)
			if err != nil {
				return err
			}
			// A stale list whose refetch failed answers with what is
			// known until the retry gets the new one, as Synapse does.
			if fresh || (l.Stale && s.retries.pending(user)) {
				addRemote(resp, user, devices, l)
				continue
			}
		}
		missing = append(missing, user)
	}
	if len(missing) == 0 {
		return nil
	}
	if s.fed == nil {
		return errNoFederation
	}
	sort.Strings(missing)
	ask := map[string][]string{}
	for _, u := range missing {
		ask[u] = []string{}
	}
	res, err := s.fed.QueryKeys(ctx, spec.ServerName(s.server), spec.ServerName(server), ask)
	if err != nil {
		return err
	}
	for _, user := range missing {
		l, err := remoteList(user, res)
		if err != nil {
			return err
		}
		if err := s.store.StoreRemoteDevices(ctx, user, l, 0); err != nil {
			return err
		}
		addRemote(resp, user, users[user], l)
	}
	return nil
}

// remoteList turns a server's answer about one of its users into the
// cached form. Device keys not naming the user and device they are
// listed under are dropped, as Synapse does.
func remoteList(user string, res fclient.RespQueryKeys) (store.RemoteDeviceList, error) {
	devices := map[string]map[string]any{}
	for id, dk := range res.DeviceKeys[user] {
		if dk.UserID == user && dk.DeviceID == id {
			devices[id] = withoutNulls(dk)
		}
	}
	raw, err := json.Marshal(devices)
	if err != nil {
		return store.RemoteDeviceList{}, err
	}
	l := store.RemoteDeviceList{Devices: string(raw), FetchedTS: time.Now().UnixMilli()}
	if k, ok := res.MasterKeys[user]; ok && k.UserID == user {
		b, _ := json.Marshal(withoutNulls(k))
		l.MasterKey = string(b)
	}
	if k, ok := res.SelfSigningKeys[user]; ok && k.UserID == user {
		b, _ := json.Marshal(withoutNulls(k))
		l.SelfKey = string(b)
	}
	return l, nil
}

func addRemote(resp *QueryResponse, user string, devices []string, l store.RemoteDeviceList) {
	all := map[string]json.RawMessage{}
	_ = json.Unmarshal([]byte(l.Devices), &all)
	if len(devices) > 0 {
		picked := map[string]json.RawMessage{}
		for _, d := range devices {
			if k, ok := all[d]; ok {
				picked[d] = k
			}
		}
		all = picked
	}
	resp.DeviceKeys[user] = all
	if l.MasterKey != "" {
		resp.MasterKeys[user] = json.RawMessage(l.MasterKey)
	}
	if l.SelfKey != "" {
		resp.SelfSigningKeys[user] = json.RawMessage(l.SelfKey)
	}
}

// withoutNulls is a decoded key object as a JSON object without the
// null fields its Go type adds (an absent "unsigned" would otherwise
// reach clients as null).
func withoutNulls(v any) map[string]any {
	raw, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	for k, x := range m {
		if x == nil {
			delete(m, k)
		}
	}
	return m
}
