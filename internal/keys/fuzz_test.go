package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/matrix-org/gomatrixserverlib"
)

var canonicalSeeds = []string{
	`{"b":1,"a":[true,false,null],"c":{"z":"\u00e9","y":"\ud83d\ude00"}}`,
	`{"one":1,"two":"Two","signatures":{"@a:x":{"ed25519:D":"sig"}},"unsigned":{"age":1}}`,
	`{"a":"\u0000\u001f\"\\/<>&"}`, `{"a":1e3}`, `{"a":-0}`, `{"a":9007199254740993}`, `{"a":1.5}`,
	`[1,2,3]`, `"x"`, `{"a":"\ud800"}`, "{\"a\":\"\xff\"}", `{"a":{"a":{"a":{"a":{"a":{"a":{}}}}}}}`, `{"a":1,"a":2}`,
}

// FuzzCanonicalJSON: device keys, one-time keys and cross-signing keys
// are compared by their canonical form (canonicalEqual, sameContent)
// and signed over it. The canonical form is valid JSON, canonical
// again unchanged, and equal to the text it came from.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := gomatrixserverlib.CanonicalJSON(raw)
		if err != nil {
			if canonicalEqual(string(raw), string(raw)) {
				t.Fatalf("%q is not canonical JSON but equals itself", raw)
			}
			return
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form of %q is not JSON: %q", raw, c)
		}
		again, err := gomatrixserverlib.CanonicalJSON(c)
		if err != nil || !bytes.Equal(again, c) {
			t.Fatalf("canonical form %q is %q canonicalised again (%v)", c, again, err)
		}
		if !canonicalEqual(string(raw), string(c)) || !canonicalEqual(string(c), string(raw)) {
			t.Fatalf("%q and its canonical form %q differ", raw, c)
		}
		if json.Valid(raw) && bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) && !sameContent(string(raw), c) {
			t.Fatalf("%q and its canonical form %q have different content", raw, c)
		}
	})
}

// FuzzVerifySigned: what a device signs verifies, and an object whose
// signed content changed does not.
func FuzzVerifySigned(f *testing.F) {
	for _, s := range canonicalSeeds {
		f.Add([]byte(s), []byte(`{"x":1}`))
	}
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{5}, ed25519.SeedSize))
	pub := base64.RawStdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	f.Fuzz(func(t *testing.T, obj, other []byte) {
		if !plainJSON(obj) {
			return
		}
		signed, err := gomatrixserverlib.SignJSON("@a:x", "ed25519:DEV", key, obj)
		if err != nil {
			return
		}
		if !verifySigned(signed, "@a:x", "ed25519:DEV", pub) {
			t.Fatalf("signed %q does not verify", signed)
		}
		if verifySigned(signed, "@b:x", "ed25519:DEV", pub) || verifySigned(signed, "@a:x", "ed25519:OTHER", pub) {
			t.Fatalf("signed %q verifies for another signer or key", signed)
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(signed, &m) != nil || json.Unmarshal(other, new(map[string]json.RawMessage)) != nil {
			return
		}
		// Another object carrying the same signature verifies only if its
		// content is the same.
		var o map[string]json.RawMessage
		_ = json.Unmarshal(other, &o)
		o["signatures"] = m["signatures"]
		forged, _ := json.Marshal(o)
		if verifySigned(forged, "@a:x", "ed25519:DEV", pub) && !sameContent(string(signed), forged) {
			t.Fatalf("the signature of %q verified %q", signed, forged)
		}
	})
}

// FuzzCrossSigningKey: cross-signing keys uploaded by clients. What is
// accepted is the user's, of the usage asked for, with one ed25519 key
// named by itself.
func FuzzCrossSigningKey(f *testing.F) {
	pub := base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	for _, s := range []string{`{"user_id":"@a:x","usage":["master"],"keys":{"ed25519:` + pub + `":"` + pub + `"}}`,
		`{"user_id":"@a:x","usage":["master"],"keys":{"ed25519:` + pub + `=":"` + pub + `="}}`,
		`{"user_id":"@a:x","usage":["master"],"keys":{}}`, `{"user_id":"@b:x","usage":["master"]}`, `[]`, `{"usage":"master"}`} {
		f.Add([]byte(s), "master")
	}
	f.Fuzz(func(t *testing.T, raw []byte, typ string) {
		k, err := parseCrossSigningKey(raw, "@a:x", typ)
		if err != nil {
			return
		}
		if k.UserID != "@a:x" || len(k.Keys) != 1 {
			t.Fatalf("accepted %q", raw)
		}
		if pk, err := decodeBase64(k.publicKey()); err != nil || len(pk) != ed25519.PublicKeySize || k.keyID() != "ed25519:"+k.publicKey() {
			t.Fatalf("accepted %q: key %q id %q", raw, k.publicKey(), k.keyID())
		}
	})
}

// plainJSON reports whether raw means the same decoded and encoded
// again: no duplicate keys (which signing and verifying read
// differently) and no numbers beyond float64.
func plainJSON(raw []byte) bool {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false
	}
	again, _ := json.Marshal(v)
	a, err1 := gomatrixserverlib.CanonicalJSON(raw)
	b, err2 := gomatrixserverlib.CanonicalJSON(again)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}
