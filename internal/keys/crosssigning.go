package keys

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Cross-signing key types, as stored and as named in "usage".
const (
	master      = "master"
	selfSigning = "self_signing"
	userSigning = "user_signing"
)

// crossSigningKey is the part of a cross-signing key the server checks.
type crossSigningKey struct {
	UserID string            `json:"user_id"`
	Usage  []string          `json:"usage"`
	Keys   map[string]string `json:"keys"`
}

// publicKey is the key's single ed25519 public key (unpadded base64).
func (k crossSigningKey) publicKey() string {
	for _, v := range k.Keys {
		return v
	}
	return ""
}

func (k crossSigningKey) keyID() string { return "ed25519:" + k.publicKey() }

// CrossSigningUpload is the body of /keys/device_signing/upload.
type CrossSigningUpload struct {
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
	UserSigningKey json.RawMessage `json:"user_signing_key"`
}

func (u CrossSigningUpload) byType() map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	for typ, raw := range map[string]json.RawMessage{master: u.MasterKey, selfSigning: u.SelfSigningKey, userSigning: u.UserSigningKey} {
		if len(raw) > 0 && string(raw) != "null" {
			out[typ] = raw
		}
	}
	return out
}

// UploadCrossSigning checks and stores cross-signing keys: each names the
// user and its purpose and has one ed25519 key; the self-signing and
// user-signing keys are signed by the master key (the one uploaded with
// them, else the stored one). A valid upload that replaces keys must
// then pass authorize (User-Interactive Auth); as in Synapse (and
// MSC3967, now the spec), the first master key and a repeat of the keys
// stored go without, since neither can take over an identity.
func (s *Service) UploadCrossSigning(ctx context.Context, userID string, u CrossSigningUpload, authorize func() error) error {
	up := u.byType()
	stored, err := s.store.CrossSigningKeys(ctx, userID)
	if err != nil {
		return err
	}
	parsed := map[string]crossSigningKey{}
	for typ, raw := range up {
		k, err := parseCrossSigningKey(raw, userID, typ)
		if err != nil {
			return err
		}
		parsed[typ] = k
	}
	masterKey, ok := parsed[master]
	if !ok {
		if old, have := stored[master]; have {
			_ = json.Unmarshal([]byte(old), &masterKey)
		} else {
			return mxerr.MissingParam("No master key: upload one first")
		}
	}
	for _, typ := range []string{selfSigning, userSigning} {
		if raw, ok := up[typ]; ok && !verifySigned(raw, userID, masterKey.keyID(), masterKey.publicKey()) {
			return invalidSignature("%s_key is not signed by the master key", typ)
		}
	}
	changed := map[string]string{}
	for typ, raw := range up {
		if old, ok := stored[typ]; !ok || !canonicalEqual(old, string(raw)) {
			changed[typ] = string(raw)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	if _, hadMaster := stored[master]; hadMaster && !s.replaceableWithoutUIA(userID) {
		if err := authorize(); err != nil {
			return err
		}
	}
	if _, err := s.atNewPosition(func(pos int64) (bool, error) {
		return true, s.store.SetCrossSigningKeys(ctx, userID, changed, pos)
	}); err != nil {
		return err
	}
	s.deviceListChanged(ctx, userID)
	s.bus.Publish(ctx, CrossSigningUpdate{UserID: userID})
	return nil
}

func parseCrossSigningKey(raw json.RawMessage, userID, typ string) (crossSigningKey, error) {
	var k crossSigningKey
	if err := json.Unmarshal(raw, &k); err != nil {
		return k, mxerr.BadJSON("%s_key is malformed: %v", typ, err)
	}
	if k.UserID != userID {
		return k, mxerr.InvalidParam("%s_key is for another user", typ)
	}
	if !slices.Contains(k.Usage, typ) {
		return k, mxerr.InvalidParam("%s_key's usage must include %q", typ, typ)
	}
	if len(k.Keys) != 1 {
		return k, mxerr.InvalidParam("%s_key must have exactly one key", typ)
	}
	for id, pub := range k.Keys {
		raw, err := decodeBase64(pub)
		if id != "ed25519:"+pub || err != nil || len(raw) != 32 {
			return k, mxerr.InvalidParam("%s_key's key must be ed25519:<public key> with a valid ed25519 key", typ)
		}
	}
	return k, nil
}

// sigFailure is one entry of /keys/signatures/upload's failures.
func sigFailure(code, msg string) map[string]string {
	return map[string]string{"errcode": code, "error": msg}
}

// UploadSignatures stores signatures a user made: of their own devices
// with their self-signing key, of their own master key with one of
// their devices, and of other users' master keys with their user-signing
// key. Each signature is checked against the object stored here; the
// ones that fail are listed per user and key.
func (s *Service) UploadSignatures(ctx context.Context, userID string, body map[string]map[string]json.RawMessage) (map[string]map[string]any, error) {
	failures := map[string]map[string]any{}
	fail := func(user, key string, f map[string]string) {
		if failures[user] == nil {
			failures[user] = map[string]any{}
		}
		failures[user][key] = f
	}
	own, err := s.store.CrossSigningKeys(ctx, userID)
	if err != nil {
		return nil, err
	}
	var sigs []store.Signature
	for target, objs := range body {
		for keyID, obj := range objs {
			sg, f, err := s.checkSignature(ctx, userID, own, target, keyID, obj)
			if err != nil {
				return nil, err
			}
			if f != nil {
				fail(target, keyID, f)
				continue
			}
			sigs = append(sigs, sg...)
		}
	}
	if len(sigs) == 0 {
		return failures, nil
	}
	if _, err := s.atNewPosition(func(pos int64) (bool, error) { return true, s.store.AddSignatures(ctx, sigs, pos) }); err != nil {
		return nil, err
	}
	targets := map[string]bool{}
	for _, sg := range sigs {
		targets[sg.TargetUser] = true
	}
	for t := range targets {
		if s.IsLocal(t) {
			s.deviceListChanged(ctx, t)
		}
	}
	return failures, nil
}

// checkSignature works out which stored object a signed upload refers to
// and which of the uploader's keys must have signed it.
func (s *Service) checkSignature(ctx context.Context, userID string, own map[string]string, target, keyID string, obj json.RawMessage) ([]store.Signature, map[string]string, error) {
	if target == userID {
		if stored, ok := own[master]; ok {
			var mk crossSigningKey
			_ = json.Unmarshal([]byte(stored), &mk)
			if keyID == mk.publicKey() {
				// The master key signed by one of the user's devices.
				return s.deviceSignatures(ctx, userID, stored, keyID, obj)
			}
		}
		rows, err := s.store.DeviceKeys(ctx, userID, localpartOf(userID), []string{keyID})
		if err != nil {
			return nil, nil, err
		}
		if len(rows) == 0 {
			return nil, sigFailure("M_NOT_FOUND", "Unknown key "+keyID), nil
		}
		return signedBy(rows[0].KeyJSON, obj, target, keyID, userID, own[selfSigning], "self-signing")
	}
	// Another user's master key, signed with the user-signing key.
	theirs, err := s.masterKeyOf(ctx, userID, target)
	if err != nil {
		return nil, nil, err
	}
	var mk crossSigningKey
	if theirs == "" || json.Unmarshal([]byte(theirs), &mk) != nil || mk.publicKey() != keyID {
		return nil, sigFailure("M_NOT_FOUND", "Unknown master key "+keyID), nil
	}
	return signedBy(theirs, obj, target, keyID, userID, own[userSigning], "user-signing")
}

// signedBy checks obj's signature by the uploader's signing key (the
// stored cross-signing key signerJSON) over stored, the object as held
// here.
func signedBy(stored string, obj json.RawMessage, target, targetKey, userID, signerJSON, what string) ([]store.Signature, map[string]string, error) {
	if signerJSON == "" {
		return nil, sigFailure("M_INVALID_SIGNATURE", "No "+what+" key uploaded"), nil
	}
	var signer crossSigningKey
	_ = json.Unmarshal([]byte(signerJSON), &signer)
	sig, ok := signatureIn(obj, userID, signer.keyID())
	if !ok {
		return nil, sigFailure("M_INVALID_SIGNATURE", "Missing signature by the "+what+" key"), nil
	}
	if !sameContent(stored, obj) || !verifySigned(withOnly(stored, userID, signer.keyID(), sig), userID, signer.keyID(), signer.publicKey()) {
		return nil, sigFailure("M_INVALID_SIGNATURE", "Invalid signature by the "+what+" key"), nil
	}
	return []store.Signature{{TargetUser: target, TargetKey: targetKey, SignerUser: userID, SignerKey: signer.keyID(), Signature: sig}}, nil, nil
}

// deviceSignatures checks signatures of the user's master key by the
// user's own devices.
func (s *Service) deviceSignatures(ctx context.Context, userID, stored, keyID string, obj json.RawMessage) ([]store.Signature, map[string]string, error) {
	var all map[string]map[string]string
	var wrapper struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	_ = json.Unmarshal(obj, &wrapper)
	all = wrapper.Signatures
	var out []store.Signature
	for signerKey, sig := range all[userID] {
		device, ok := strings.CutPrefix(signerKey, "ed25519:")
		if !ok || device == keyID {
			continue
		}
		rows, err := s.store.DeviceKeys(ctx, userID, localpartOf(userID), []string{device})
		if err != nil {
			return nil, nil, err
		}
		if len(rows) == 0 {
			continue
		}
		var dk deviceKeys
		_ = json.Unmarshal([]byte(rows[0].KeyJSON), &dk)
		if !sameContent(stored, obj) || !verifySigned(withOnly(stored, userID, signerKey, sig), userID, signerKey, dk.Keys[signerKey]) {
			return nil, sigFailure("M_INVALID_SIGNATURE", "Invalid signature by device "+device), nil
		}
		out = append(out, store.Signature{TargetUser: userID, TargetKey: keyID, SignerUser: userID, SignerKey: signerKey, Signature: sig})
	}
	if len(out) == 0 {
		return nil, sigFailure("M_INVALID_SIGNATURE", "No valid signature by one of the user's devices"), nil
	}
	return out, nil, nil
}

// masterKeyOf finds another user's master key: stored for local users,
// from their server (through the device-list cache) for remote ones.
func (s *Service) masterKeyOf(ctx context.Context, requester, user string) (string, error) {
	if s.IsLocal(user) {
		cs, err := s.store.CrossSigningKeys(ctx, user)
		return cs[master], err
	}
	resp, err := s.Query(ctx, requester, map[string][]string{user: {}}, DefaultTimeout)
	if err != nil {
		return "", err
	}
	return string(resp.MasterKeys[user]), nil
}

func signatureIn(obj json.RawMessage, signer, keyID string) (string, bool) {
	var w struct {
		Signatures map[string]map[string]string `json:"signatures"`
	}
	if json.Unmarshal(obj, &w) != nil {
		return "", false
	}
	sig, ok := w.Signatures[signer][keyID]
	return sig, ok
}

// sameContent compares two signed objects without their signatures and
// unsigned data: a signature is only stored for the object held here.
func sameContent(a string, b json.RawMessage) bool {
	strip := func(raw []byte) string {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return "\x00"
		}
		delete(m, "signatures")
		delete(m, "unsigned")
		out, _ := json.Marshal(m)
		return string(out)
	}
	return canonicalEqual(strip([]byte(a)), strip(b))
}

// withOnly is stored with its signatures replaced by one signature.
func withOnly(stored, signer, keyID, sig string) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(stored), &m) != nil {
		return nil
	}
	m["signatures"], _ = json.Marshal(map[string]map[string]string{signer: {keyID: sig}})
	out, _ := json.Marshal(m)
	return out
}

var errNoFederation = errors.New("federation is disabled")
