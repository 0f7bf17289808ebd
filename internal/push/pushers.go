package push

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// notifyPath is the push gateway API's endpoint, which an http pusher's
// URL must name.
const notifyPath = "/_matrix/push/v1/notify"

// PusherBody is the body of POST /pushers/set. Kind is nil to delete.
type PusherBody struct {
	Kind              *string         `json:"kind"`
	AppID             *string         `json:"app_id"`
	Pushkey           *string         `json:"pushkey"`
	AppDisplayName    *string         `json:"app_display_name"`
	DeviceDisplayName *string         `json:"device_display_name"`
	ProfileTag        string          `json:"profile_tag"`
	Lang              *string         `json:"lang"`
	Data              json.RawMessage `json:"data"`
	Append            bool            `json:"append"`
}

// PusherInfo is a pusher as GET /pushers lists it.
type PusherInfo struct {
	AppDisplayName    string          `json:"app_display_name"`
	AppID             string          `json:"app_id"`
	Data              json.RawMessage `json:"data"`
	DeviceDisplayName string          `json:"device_display_name"`
	Kind              string          `json:"kind"`
	Lang              string          `json:"lang"`
	ProfileTag        string          `json:"profile_tag,omitempty"`
	Pushkey           string          `json:"pushkey"`
}

// Pushers lists a user's pushers.
func (s *Service) Pushers(ctx context.Context, localpart string) ([]PusherInfo, error) {
	ps, err := s.store.Pushers(ctx, localpart)
	if err != nil {
		return nil, err
	}
	out := make([]PusherInfo, len(ps))
	for i, p := range ps {
		out[i] = PusherInfo{AppDisplayName: p.AppDisplayName, AppID: p.AppID, Data: json.RawMessage(p.Data),
			DeviceDisplayName: p.DeviceDisplayName, Kind: p.Kind, Lang: p.Lang, ProfileTag: p.ProfileTag, Pushkey: p.Pushkey}
	}
	return out, nil
}

// SetPusher creates, updates or (kind null) deletes a pusher of the
// caller's device. Only http pushers exist here: email ones need mail
// delivery this server does not have.
func (s *Service) SetPusher(ctx context.Context, localpart, deviceID string, b PusherBody) error {
	var missing []string
	if b.AppID == nil {
		missing = append(missing, "app_id")
	}
	if b.Pushkey == nil {
		missing = append(missing, "pushkey")
	}
	if len(missing) > 0 {
		return mxerr.MissingParam("Missing parameters: %s", strings.Join(missing, ", "))
	}
	if len(*b.AppID) > 64 {
		return mxerr.InvalidParam("app_id is at most 64 characters")
	}
	if len(*b.Pushkey) > 512 {
		return mxerr.InvalidParam("pushkey is at most 512 bytes")
	}
	if b.Kind == nil {
		return s.store.DeletePusher(ctx, localpart, *b.AppID, *b.Pushkey)
	}
	p, err := checkPusher(b)
	if err != nil {
		return err
	}
	p.Localpart, p.DeviceID, p.PushkeyTS = localpart, deviceID, time.Now().UnixMilli()
	// Every notification goes to every pusher: their number is bounded.
	have, err := s.store.Pushers(ctx, localpart)
	if err != nil {
		return err
	}
	if len(have) >= maxPushersPerUser && !slices.ContainsFunc(have, func(o store.Pusher) bool {
		return o.AppID == p.AppID && o.Pushkey == p.Pushkey
	}) {
		return overAccountLimit(pushersInfoURI, "Too many pushers: at most %d", maxPushersPerUser)
	}
	if err := s.store.SetPusher(ctx, p, b.Append); err != nil {
		return err
	}
	s.deliver.addUser(localpart)
	return nil
}

// Bounds on a pusher's free-form fields, far above what gateways use,
// and on a user's pushers (one per app on each of their devices).
const (
	maxPusherField    = 512
	maxPusherData     = 8 << 10
	maxPushersPerUser = 100
)

// checkPusher checks a pusher's fields as Synapse does: the display names,
// lang and data are required, and an http pusher's data.url must be an
// http(s) URL of the gateway's /notify endpoint.
func checkPusher(b PusherBody) (store.Pusher, error) {
	var missing []string
	if b.AppDisplayName == nil {
		missing = append(missing, "app_display_name")
	}
	if b.DeviceDisplayName == nil {
		missing = append(missing, "device_display_name")
	}
	if b.Lang == nil {
		missing = append(missing, "lang")
	}
	if b.Data == nil {
		missing = append(missing, "data")
	}
	if len(missing) > 0 {
		return store.Pusher{}, mxerr.MissingParam("Missing parameters: %s", strings.Join(missing, ", "))
	}
	// A pusher's fields go to its gateway with every notification.
	for field, v := range map[string]*string{"app_display_name": b.AppDisplayName, "device_display_name": b.DeviceDisplayName,
		"profile_tag": &b.ProfileTag, "lang": b.Lang} {
		if v != nil && len(*v) > maxPusherField {
			return store.Pusher{}, tooLong(field, maxPusherField)
		}
	}
	if len(b.Data) > maxPusherData {
		return store.Pusher{}, tooLong("data", maxPusherData)
	}
	switch *b.Kind {
	case "http":
	case "email":
		return store.Pusher{}, mxerr.InvalidParam("Email pushers are not supported by this server")
	default:
		return store.Pusher{}, mxerr.InvalidParam("Unknown pusher kind %q", *b.Kind)
	}
	var data map[string]any
	if err := json.Unmarshal(b.Data, &data); err != nil || data == nil {
		return store.Pusher{}, mxerr.InvalidParam("'data' must be an object")
	}
	raw, _ := data["url"].(string)
	if raw == "" {
		return store.Pusher{}, mxerr.InvalidParam("'url' required in data for HTTP pusher")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return store.Pusher{}, mxerr.InvalidParam("'url' must be an http(s) URL")
	}
	if u.Path != notifyPath {
		return store.Pusher{}, mxerr.InvalidParam("'url' must have a path of '%s'", notifyPath)
	}
	return store.Pusher{AppID: *b.AppID, Pushkey: *b.Pushkey, Kind: *b.Kind, AppDisplayName: *b.AppDisplayName,
		DeviceDisplayName: *b.DeviceDisplayName, ProfileTag: b.ProfileTag, Lang: *b.Lang, Data: string(b.Data)}, nil
}
