package keys

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// signingKeyUpdate is an m.signing_key_update EDU's content (server-server
// spec "Cross-signing keys"): a user's new master and/or self-signing key.
type signingKeyUpdate struct {
	UserID         string          `json:"user_id"`
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
}

// HandleSigningKeyUpdate takes an m.signing_key_update EDU from origin.
// The keys are checked (a user of origin's, usage and one ed25519 key
// each, the self-signing key signed by the master key) and stored in
// the user's cached device list in place, as Synapse's
// SigningKeyEduUpdater stores them, so that local users' key queries
// get them without asking origin; local users sharing a room are told
// through /sync's device_lists.changed. Updates for users sharing no
// room are ignored, as Synapse does (their lists are not kept up to
// date by their server anyway); a list never fetched, or stale, is
// refetched whole instead.
func (s *Service) HandleSigningKeyUpdate(ctx context.Context, origin string, content json.RawMessage) error {
	var edu signingKeyUpdate
	if err := json.Unmarshal(content, &edu); err != nil {
		return mxerr.BadJSON("m.signing_key_update: %v", err)
	}
	if err := checkOrigin(origin, edu.UserID); err != nil {
		return err
	}
	up := CrossSigningUpload{MasterKey: edu.MasterKey, SelfSigningKey: edu.SelfSigningKey}.byType()
	if len(up) == 0 {
		return nil
	}
	if tracked, err := s.sharesRoom(ctx, edu.UserID); err != nil || !tracked {
		return err
	}
	applied, err := s.applySigningKeys(ctx, edu.UserID, up)
	if err != nil || applied {
		return err
	}
	if err := s.MarkRemoteDeviceListStale(ctx, edu.UserID); err != nil {
		return err
	}
	s.Resync(edu.UserID)
	return nil
}

// applySigningKeys stores a remote user's new cross-signing keys in
// their cached list when it is fresh; it reports whether it did. Keys
// that fail the checks refuse the whole update (the cache keeps the
// keys it had).
func (s *Service) applySigningKeys(ctx context.Context, userID string, up map[string]json.RawMessage) (bool, error) {
	parsed := map[string]crossSigningKey{}
	for typ, raw := range up {
		k, err := parseCrossSigningKey(raw, userID, typ)
		if err != nil {
			return false, err
		}
		parsed[typ] = k
	}
	defer s.remote.lock(userID)()
	l, err := s.store.RemoteDevices(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if l.Stale {
		return false, nil
	}
	masterKey, ok := parsed[master]
	if !ok {
		if l.MasterKey == "" || json.Unmarshal([]byte(l.MasterKey), &masterKey) != nil {
			return false, nil // a self-signing key without a master key to check it by: refetch
		}
	}
	if raw, ok := up[selfSigning]; ok && !verifySigned(raw, userID, masterKey.keyID(), masterKey.publicKey()) {
		return false, invalidSignature("m.signing_key_update: self_signing_key is not signed by the master key")
	}
	changed := false
	for typ, raw := range up {
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			return false, mxerr.BadJSON("m.signing_key_update: %s_key: %v", typ, err)
		}
		b, err := json.Marshal(obj)
		if err != nil {
			return false, err
		}
		switch typ {
		case master:
			changed = changed || !canonicalEqual(l.MasterKey, string(b))
			l.MasterKey = string(b)
		case selfSigning:
			changed = changed || !canonicalEqual(l.SelfKey, string(b))
			l.SelfKey = string(b)
		}
	}
	if !changed {
		return true, nil
	}
	l.FetchedTS = s.now().UnixMilli()
	return true, s.storeRemote(ctx, userID, l)
}
