package peer

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// The device endpoints (server-server spec "Device Management" and
// "End-to-End Encryption"), answered from what SetUserDevices gave.
const (
	UserDevices   Endpoint = "user_devices"    // GET /user/devices/{userId}
	UserKeysQuery Endpoint = "user_keys_query" // POST /user/keys/query
)

// UserDeviceList is a /user/devices answer: the peer serves it as given
// and derives its /user/keys/query answers from it.
type UserDeviceList struct {
	UserID         string          `json:"user_id"`
	StreamID       int64           `json:"stream_id"`
	Devices        []UserDevice    `json:"devices"`
	MasterKey      json.RawMessage `json:"master_key,omitempty"`
	SelfSigningKey json.RawMessage `json:"self_signing_key,omitempty"`
}

// UserDevice is a device of a /user/devices answer.
type UserDevice struct {
	DeviceID string          `json:"device_id"`
	Keys     json.RawMessage `json:"keys"`
}

// SetUserDevices sets what the peer answers about one of its users'
// devices; users without one get an empty list at stream_id 0.
func (p *Peer) SetUserDevices(l UserDeviceList) {
	raw, err := json.Marshal(l)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.devices[l.UserID] = raw
}

func (p *Peer) userDevices(userID string) UserDeviceList {
	p.mu.Lock()
	raw, ok := p.devices[userID]
	p.mu.Unlock()
	l := UserDeviceList{UserID: userID}
	if ok {
		_ = json.Unmarshal(raw, &l)
	}
	return l
}

func (p *Peer) serveUserDevices(w http.ResponseWriter, r *request) {
	user := r.PathValue("userId")
	if serverOf(user) != p.Name {
		writeError(w, http.StatusBadRequest, "M_INVALID_PARAM", "Not one of my users")
		return
	}
	l := p.userDevices(user)
	if l.Devices == nil {
		l.Devices = l.Devices[:0]
	}
	writeJSON(w, http.StatusOK, l)
}

func (p *Peer) serveUserKeysQuery(w http.ResponseWriter, r *request) {
	var body struct {
		DeviceKeys map[string][]string `json:"device_keys"`
	}
	if err := json.Unmarshal(r.content, &body); err != nil {
		writeError(w, http.StatusBadRequest, "M_BAD_JSON", err.Error())
		return
	}
	resp := map[string]map[string]json.RawMessage{"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
	for user := range body.DeviceKeys {
		l := p.userDevices(user)
		devices := map[string]json.RawMessage{}
		for _, d := range l.Devices {
			devices[d.DeviceID] = d.Keys
		}
		raw, _ := json.Marshal(devices)
		resp["device_keys"][user] = raw
		if len(l.MasterKey) > 0 {
			resp["master_keys"][user] = l.MasterKey
		}
		if len(l.SelfSigningKey) > 0 {
			resp["self_signing_keys"][user] = l.SelfSigningKey
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// SendEDU pushes one EDU to a Myelin server in a transaction of its own.
func (p *Peer) SendEDU(t testing.TB, to *testserver.Server, eduType string, content any) {
	t.Helper()
	body := map[string]any{"origin": p.Name, "origin_server_ts": time.Now().UnixMilli(), "pdus": []any{},
		"edus": []any{map[string]any{"edu_type": eduType, "content": content}}}
	txn := "edu" + strconv.FormatInt(time.Now().UnixNano()+p.txnID.Add(1), 10)
	if status, raw := p.Request(t, to, http.MethodPut, "/_matrix/federation/v1/send/"+txn, body); status != http.StatusOK {
		t.Fatalf("peer: send %s: %d %s", eduType, status, raw)
	}
}
