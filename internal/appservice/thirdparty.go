package appservice

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Third-party lookups (spec "Third-party Networks", client API
// /thirdparty/*): the homeserver asks the services whose registrations
// list the protocol and merges their answers, as Synapse's
// ApplicationServicesHandler does. A service's answer is untrusted: it
// is size-bounded, parsed into the spec's shapes (what does not fit is
// dropped, as Synapse drops invalid results) and re-encoded, so a
// client never sees a service's malformed JSON or invalid UTF-8.

const (
	// thirdPartyTimeout bounds one service's answer: a client waits.
	thirdPartyTimeout = 10 * time.Second
	// thirdPartyAnswerBytes bounds what is read of one answer.
	thirdPartyAnswerBytes = 1 << 20
	// maxThirdPartyItems bounds the instances of a merged protocol and
	// the results of a merged lookup.
	maxThirdPartyItems = 1000
	// protocolCacheTTL is how long a service's protocol metadata is
	// reused; Synapse keeps it an hour (as_protocol_meta), a minute is
	// enough to spare a service a client's repeated room-directory
	// opening and short enough that a restarted bridge is seen soon.
	protocolCacheTTL = time.Minute
)

// Protocol is a third-party protocol's metadata (spec Protocol).
type Protocol struct {
	UserFields     []string             `json:"user_fields"`
	LocationFields []string             `json:"location_fields"`
	Icon           string               `json:"icon"`
	FieldTypes     map[string]FieldType `json:"field_types"`
	Instances      []ProtocolInstance   `json:"instances"`
}

// FieldType describes a field of a protocol's lookups.
type FieldType struct {
	Regexp      string `json:"regexp"`
	Placeholder string `json:"placeholder"`
}

// ProtocolInstance is one network of a protocol (spec ProtocolInstance).
// InstanceID is set by the homeserver: "{appservice id}|{network id}",
// what /publicRooms takes as third_party_instance_id (Synapse's
// ThirdPartyInstanceID).
type ProtocolInstance struct {
	Desc       string         `json:"desc"`
	Icon       string         `json:"icon,omitempty"`
	Fields     map[string]any `json:"fields"`
	NetworkID  string         `json:"network_id"`
	InstanceID string         `json:"instance_id,omitempty"`
}

// ThirdPartyResult is a third-party user or location (spec
// ThirdPartyUser and Location): the Matrix ID (userid or alias), the
// protocol and the fields identifying it on its network.
type ThirdPartyResult struct {
	UserID   string         `json:"userid,omitempty"`
	Alias    string         `json:"alias,omitempty"`
	Protocol string         `json:"protocol"`
	Fields   map[string]any `json:"fields"`
}

// ThirdPartyKind is what a lookup finds: users or locations.
type ThirdPartyKind string

const (
	ThirdPartyUser     ThirdPartyKind = "user"
	ThirdPartyLocation ThirdPartyKind = "location"
)

// ParseProtocol reads a service's protocol metadata. Like Synapse's
// _is_valid_3pe_metadata it wants an instances list; the other fields
// must have the spec's types when present, and absent lists become
// empty ones. Instances that are not objects of the spec's shape are
// dropped, not the whole answer.
func ParseProtocol(data []byte) (*Protocol, error) {
	var raw struct {
		UserFields     []string             `json:"user_fields"`
		LocationFields []string             `json:"location_fields"`
		Icon           string               `json:"icon"`
		FieldTypes     map[string]FieldType `json:"field_types"`
		Instances      *[]json.RawMessage   `json:"instances"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw.Instances == nil {
		return nil, errors.New("no instances list")
	}
	p := &Protocol{UserFields: nonNil(raw.UserFields), LocationFields: nonNil(raw.LocationFields), Icon: raw.Icon,
		FieldTypes: raw.FieldTypes, Instances: []ProtocolInstance{}}
	if p.FieldTypes == nil {
		p.FieldTypes = map[string]FieldType{}
	}
	for _, r := range *raw.Instances {
		if len(p.Instances) == maxThirdPartyItems {
			break
		}
		var in ProtocolInstance
		if json.Unmarshal(r, &in) != nil || in.NetworkID == "" {
			continue
		}
		if in.Fields == nil {
			in.Fields = map[string]any{}
		}
		in.InstanceID = "" // the homeserver's to set
		p.Instances = append(p.Instances, in)
	}
	return p, nil
}

// ParseThirdPartyResults reads a service's answer to a user or location
// lookup: a list whose valid entries (an object with the kind's Matrix
// ID and protocol as strings and fields as an object, Synapse's
// _is_valid_3pe_result) are kept; anything else in the list is dropped.
func ParseThirdPartyResults(kind ThirdPartyKind, data []byte) ([]ThirdPartyResult, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, err
	}
	out := []ThirdPartyResult{}
	for _, r := range list {
		if len(out) == maxThirdPartyItems {
			break
		}
		var v struct {
			UserID   *string         `json:"userid"`
			Alias    *string         `json:"alias"`
			Protocol *string         `json:"protocol"`
			Fields   *map[string]any `json:"fields"`
		}
		if json.Unmarshal(r, &v) != nil || v.Protocol == nil || v.Fields == nil || *v.Fields == nil {
			continue
		}
		res := ThirdPartyResult{Protocol: *v.Protocol, Fields: *v.Fields}
		switch {
		case kind == ThirdPartyUser && v.UserID != nil && *v.UserID != "":
			res.UserID = *v.UserID
		case kind == ThirdPartyLocation && v.Alias != nil && *v.Alias != "":
			res.Alias = *v.Alias
		default:
			continue
		}
		out = append(out, res)
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ThirdParty answers the client API's third-party lookups from the
// registered services.
type ThirdParty struct {
	reg     *Registry
	client  *Client
	log     *slog.Logger
	timeout time.Duration // thirdPartyTimeout; tests shorten it

	mu    sync.Mutex
	cache map[[2]string]cachedProtocol // (service id, protocol)
}

type cachedProtocol struct {
	p  *Protocol
	at time.Time
}

// NewThirdParty makes the lookup service.
func NewThirdParty(reg *Registry, client *Client, log *slog.Logger) *ThirdParty {
	if log == nil {
		log = slog.Default()
	}
	return &ThirdParty{reg: reg, client: client, log: log, timeout: thirdPartyTimeout, cache: map[[2]string]cachedProtocol{}}
}

// servicesFor lists the services with a URL whose registrations list
// protocol.
func (t *ThirdParty) servicesFor(protocol string) []*Registration {
	var out []*Registration
	for _, reg := range t.reg.All() {
		if reg.URL != "" && containsString(reg.Protocols, protocol) {
			out = append(out, reg)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Protocols merges the services' metadata of every protocol (only, if
// not empty, that one) as Synapse's get_3pe_protocols: the first
// service's fields, every service's instances, each given its
// instance_id. A protocol no service answered for is left out.
func (t *ThirdParty) Protocols(ctx context.Context, only string) map[string]*Protocol {
	type job struct {
		reg      *Registration
		protocol string
	}
	var jobs []job
	for _, reg := range t.reg.All() {
		if reg.URL == "" {
			continue
		}
		for _, p := range reg.Protocols {
			if only == "" || p == only {
				jobs = append(jobs, job{reg, p})
			}
		}
	}
	answers := make([]*Protocol, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = t.protocol(ctx, j.reg, j.protocol)
		}()
	}
	wg.Wait()
	out := map[string]*Protocol{}
	for i, j := range jobs {
		a := answers[i]
		if a == nil {
			continue
		}
		merged, ok := out[j.protocol]
		if !ok {
			merged = &Protocol{UserFields: a.UserFields, LocationFields: a.LocationFields, Icon: a.Icon,
				FieldTypes: a.FieldTypes, Instances: []ProtocolInstance{}}
			out[j.protocol] = merged
		}
		for _, in := range a.Instances {
			if len(merged.Instances) == maxThirdPartyItems {
				break
			}
			if !strings.Contains(j.reg.ID, "|") && !strings.Contains(in.NetworkID, "|") {
				in.InstanceID = j.reg.ID + "|" + in.NetworkID
			}
			merged.Instances = append(merged.Instances, in)
		}
	}
	return out
}

// protocol is one service's metadata of a protocol, nil when it has
// none or answers badly; successful answers are cached a while.
func (t *ThirdParty) protocol(ctx context.Context, reg *Registration, protocol string) *Protocol {
	key := [2]string{reg.ID, protocol}
	t.mu.Lock()
	c, ok := t.cache[key]
	t.mu.Unlock()
	if ok && time.Since(c.at) < protocolCacheTTL {
		return c.p
	}
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	body, err := t.client.get(ctx, reg, "/_matrix/app/v1/thirdparty/protocol/"+url.PathEscape(protocol), nil)
	if err != nil {
		t.logFailure(reg, "protocol", err)
		return nil
	}
	p, err := ParseProtocol(body)
	if err != nil {
		t.log.Warn("appservice third-party protocol answer is invalid", "appservice", reg.ID, "protocol", protocol, "err", err)
		return nil
	}
	t.mu.Lock()
	t.cache[key] = cachedProtocol{p, time.Now()}
	t.mu.Unlock()
	return p
}

// Lookup asks the services of protocol for the users or locations the
// fields describe (GET /thirdparty/{kind}/{protocol}), all at once, and
// concatenates their valid results in registration order. The fields
// are the client's query string (Synapse forwards all but
// access_token).
func (t *ThirdParty) Lookup(ctx context.Context, kind ThirdPartyKind, protocol string, fields url.Values) []ThirdPartyResult {
	return t.ask(ctx, kind, t.servicesFor(protocol), "/_matrix/app/v1/thirdparty/"+string(kind)+"/"+url.PathEscape(protocol), fields)
}

// ReverseLookup finds the third-party users of a Matrix user ID (kind
// user, GET /thirdparty/user?userid=) or the locations of a room alias
// (kind location, GET /thirdparty/location?alias=), asking the services
// that list a protocol and whose namespaces hold the ID: only they can
// have bridged it.
func (t *ThirdParty) ReverseLookup(ctx context.Context, kind ThirdPartyKind, matrixID string) []ThirdPartyResult {
	var services []*Registration
	param := "userid"
	for _, reg := range t.reg.All() {
		if reg.URL == "" || len(reg.Protocols) == 0 {
			continue
		}
		if kind == ThirdPartyUser && reg.OwnsUser(matrixID, t.reg.ServerName) ||
			kind == ThirdPartyLocation && reg.InAliases(matrixID) {
			services = append(services, reg)
		}
	}
	if kind == ThirdPartyLocation {
		param = "alias"
	}
	return t.ask(ctx, kind, services, "/_matrix/app/v1/thirdparty/"+string(kind), url.Values{param: {matrixID}})
}

func (t *ThirdParty) ask(ctx context.Context, kind ThirdPartyKind, services []*Registration, path string, q url.Values) []ThirdPartyResult {
	answers := make([][]ThirdPartyResult, len(services))
	var wg sync.WaitGroup
	for i, reg := range services {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, t.timeout)
			defer cancel()
			body, err := t.client.get(ctx, reg, path, q)
			if err != nil {
				t.logFailure(reg, string(kind), err)
				return
			}
			res, err := ParseThirdPartyResults(kind, body)
			if err != nil {
				t.log.Warn("appservice third-party answer is invalid", "appservice", reg.ID, "kind", kind, "err", err)
				return
			}
			answers[i] = res
		}()
	}
	wg.Wait()
	out := []ThirdPartyResult{}
	for _, a := range answers {
		out = append(out, a[:min(len(a), maxThirdPartyItems-len(out))]...)
	}
	return out
}

// logFailure logs a failed lookup; a 404 is the spec's "none found".
func (t *ThirdParty) logFailure(reg *Registration, what string, err error) {
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusNotFound {
		return
	}
	t.log.Warn("appservice third-party lookup failed", "appservice", reg.ID, "lookup", what, "err", err)
}

// get is a GET of a third-party path with query q; the answer may be
// larger than other requests' (a directory of many networks), up to
// thirdPartyAnswerBytes: past that it is refused, not cut.
func (c *Client) get(ctx context.Context, reg *Registration, path string, q url.Values) ([]byte, error) {
	if reg.URL == "" {
		return nil, fmt.Errorf("application service %s has no url", reg.ID)
	}
	u := reg.URL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+reg.HSToken)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, thirdPartyAnswerBytes+1))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{Status: resp.StatusCode, Body: out[:min(len(out), 200)]}
	}
	if len(out) > thirdPartyAnswerBytes {
		return nil, fmt.Errorf("answer larger than %d bytes", thirdPartyAnswerBytes)
	}
	return out, nil
}
