package keys

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// UploadRequest is the body of POST /keys/upload.
type UploadRequest struct {
	DeviceKeys   json.RawMessage            `json:"device_keys"`
	OneTimeKeys  map[string]json.RawMessage `json:"one_time_keys"`
	FallbackKeys map[string]json.RawMessage `json:"fallback_keys"`
}

// deviceKeys is the part of a device_keys object the server checks:
// its required fields (client-server spec, DeviceKeys), with their types.
type deviceKeys struct {
	UserID     *string                      `json:"user_id"`
	DeviceID   *string                      `json:"device_id"`
	Algorithms []string                     `json:"algorithms"`
	Keys       map[string]string            `json:"keys"`
	Signatures map[string]map[string]string `json:"signatures"`
}

func invalidSignature(format string, args ...any) *mxerr.Error {
	e := mxerr.InvalidParam(format, args...)
	e.Code = "M_INVALID_SIGNATURE"
	return e
}

// Upload stores a device's keys and returns its one-time key counts.
func (s *Service) Upload(ctx context.Context, userID, deviceID string, req UploadRequest) (map[string]int, error) {
	defer s.countsChanged()
	if len(req.DeviceKeys) > 0 && string(req.DeviceKeys) != "null" {
		if err := s.uploadDeviceKeys(ctx, userID, deviceID, req.DeviceKeys); err != nil {
			return nil, err
		}
	}
	if len(req.OneTimeKeys) > 0 {
		keys, err := keyObjects(req.OneTimeKeys)
		if err != nil {
			return nil, err
		}
		err = s.store.AddOneTimeKeys(ctx, userID, deviceID, keys, canonicalEqual)
		if errors.Is(err, store.ErrKeyMismatch) {
			// Synapse: "One time key %s:%s already exists. Old key: ...;
			// new key: ..." (400 M_UNKNOWN in Synapse; M_INVALID_PARAM
			// names the problem better and clients treat both alike).
			return nil, mxerr.InvalidParam("One-time key %s already exists with other content", strings.TrimPrefix(err.Error(), store.ErrKeyMismatch.Error()+": "))
		}
		if err != nil {
			return nil, err
		}
	}
	if len(req.FallbackKeys) > 0 {
		keys, err := keyObjects(req.FallbackKeys)
		if err != nil {
			return nil, err
		}
		// One fallback key per algorithm: the last one of an algorithm in
		// the upload wins, as in Synapse.
		byAlg := map[string]store.KeyObject{}
		for _, k := range keys {
			byAlg[k.Algorithm] = k
		}
		keys = keys[:0]
		for _, k := range byAlg {
			keys = append(keys, k)
		}
		if err := s.store.SetFallbackKeys(ctx, userID, deviceID, keys); err != nil {
			return nil, err
		}
	}
	// The counts answered must be read after the upload: the deferred
	// countsChanged runs only after this read, which would otherwise be
	// served the counts cached before the upload (by the last /sync).
	s.countsChanged()
	if len(req.OneTimeKeys) > 0 || len(req.FallbackKeys) > 0 {
		s.bus.Publish(ctx, KeysUploaded{UserID: userID, DeviceID: deviceID})
	}
	return s.OneTimeKeyCounts(ctx, userID, deviceID)
}

// keyObjects splits "<algorithm>:<key_id>" names.
func keyObjects(m map[string]json.RawMessage) ([]store.KeyObject, error) {
	out := make([]store.KeyObject, 0, len(m))
	for name, raw := range m {
		alg, id, ok := strings.Cut(name, ":")
		// A malformed key is M_BAD_JSON, as the spec's errors for a body
		// that does not match the schema and Synapse's validation of this
		// body answer.
		if !ok || alg == "" || id == "" {
			return nil, mxerr.BadJSON("Key name %q is not <algorithm>:<key_id>", name)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, mxerr.BadJSON("Key %q is not valid JSON", name)
		}
		switch v := v.(type) {
		case string:
		case map[string]any:
			// A key object (spec "KeyObject") carries its key as a string.
			if _, ok := v["key"].(string); !ok {
				return nil, mxerr.BadJSON("Key %q has no string \"key\"", name)
			}
		default:
			return nil, mxerr.BadJSON("Key %q must be a string or an object", name)
		}
		out = append(out, store.KeyObject{Algorithm: alg, KeyID: id, JSON: string(raw)})
	}
	return out, nil
}

// uploadDeviceKeys checks and stores a device's identity keys. Only
// what the spec requires is checked, as Synapse does: the object has the
// DeviceKeys fields with their types, and names the uploading user and
// device. The device's self-signature is not verified: the clients that
// use the keys verify it, and Synapse stores keys whose signature it
// cannot check (an algorithm it does not know), which other servers'
// clients then upload to us too.
func (s *Service) uploadDeviceKeys(ctx context.Context, userID, deviceID string, raw json.RawMessage) error {
	var dk deviceKeys
	if err := json.Unmarshal(raw, &dk); err != nil {
		return mxerr.BadJSON("device_keys is malformed: %v", err)
	}
	if dk.UserID == nil || dk.DeviceID == nil || dk.Algorithms == nil || dk.Keys == nil || dk.Signatures == nil {
		return mxerr.BadJSON("device_keys needs user_id, device_id, algorithms, keys and signatures")
	}
	if *dk.UserID != userID || *dk.DeviceID != deviceID {
		// Synapse: "Not allowed to upload keys for another user/device".
		return mxerr.InvalidParam("device_keys must be for the uploading user and device")
	}
	// The update's prev_id: the user's change before this one.
	prevPos, err := s.store.LastDeviceListPos(ctx, userID)
	if err != nil {
		return err
	}
	// New identity keys for a known device ID replace the old ones, as
	// Synapse stores them: the spec checks nothing more, a client that
	// lost its crypto store re-uploads under the same device, and the
	// clients that verified the device see its keys change and stop
	// trusting it. Only an identical upload is a no-op.
	decide := func(old string) (bool, error) {
		return !canonicalEqual(old, string(raw)), nil
	}
	pos, err := s.atNewPosition(func(pos int64) (bool, error) {
		return s.store.SetDeviceKeys(ctx, userID, deviceID, string(raw), decide, pos)
	})
	if err != nil || pos == 0 {
		return err
	}
	s.deviceListChanged(ctx, userID)
	s.bus.Publish(ctx, DeviceUpdate{UserID: userID, DeviceID: deviceID, StreamID: pos, PrevID: prevPos})
	return nil
}

// OneTimeKeyCounts counts a device's unclaimed one-time keys by
// algorithm; signed_curve25519 is always present, as Synapse and clients
// expect.
func (s *Service) OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	c, err := s.keyCounts(ctx, userID, deviceID)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(c.otks)+1)
	for k, v := range c.otks {
		out[k] = v
	}
	if _, ok := out["signed_curve25519"]; !ok {
		out["signed_curve25519"] = 0
	}
	return out, nil
}

// UnusedFallbackKeyTypes lists the algorithms of a device's fallback keys
// not yet handed out (sync's device_unused_fallback_key_types).
func (s *Service) UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error) {
	c, err := s.keyCounts(ctx, userID, deviceID)
	return append([]string{}, c.fallbacks...), err
}

// countsEntry is a device's key counts as last read.
type countsEntry struct {
	gen       int64
	otks      map[string]int
	fallbacks []string
}

// keyCounts reads a device's key counts, from memory while no upload,
// claim or removal happened since: every /sync sends them.
func (s *Service) keyCounts(ctx context.Context, userID, deviceID string) (countsEntry, error) {
	key := userID + "|" + deviceID
	s.countsMu.Lock()
	gen := s.countsGen
	c, ok := s.counts[key]
	s.countsMu.Unlock()
	if ok && c.gen == gen {
		return c, nil
	}
	otks, err := s.store.OneTimeKeyCounts(ctx, userID, deviceID)
	if err != nil {
		return countsEntry{}, err
	}
	fallbacks, err := s.store.UnusedFallbackKeyTypes(ctx, userID, deviceID)
	if err != nil {
		return countsEntry{}, err
	}
	c = countsEntry{gen: gen, otks: otks, fallbacks: fallbacks}
	s.countsMu.Lock()
	if s.countsGen == gen {
		if len(s.counts) > 100000 {
			clear(s.counts)
		}
		s.counts[key] = c
	}
	s.countsMu.Unlock()
	return c, nil
}

// countsChanged forgets every cached count; called after a change is
// stored, so that a read racing it is not kept.
func (s *Service) countsChanged() {
	s.countsMu.Lock()
	s.countsGen++
	s.countsMu.Unlock()
}
