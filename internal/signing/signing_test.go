package signing

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRoundTripAndSynapseFormat(t *testing.T) {
	// A key line as Synapse's generate_signing_key writes it.
	k, err := Parse("ed25519 a_abcd nZ7GLtQ9ZyBeOL+XItB+Mqbh3gPBQZ4pvsaeHxUj4bs\n")
	if err != nil {
		t.Fatal(err)
	}
	if k.ID != "ed25519:a_abcd" {
		t.Fatalf("id %q", k.ID)
	}
	again, err := Parse(k.Encode())
	if err != nil || !bytes.Equal(again.Private, k.Private) {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "ed25519 a_b", "rsa a_b AAAA", "ed25519 a-b nZ7GLtQ9ZyBeOL+XItB+Mqbh3gPBQZ4pvsaeHxUj4bs", "ed25519 a_b AAAA"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestLoadOrGenerateKeepsTheKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "signing.key")
	k1, created, err := LoadOrGenerate(path)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	k2, created, err := LoadOrGenerate(path)
	if err != nil || created || k2.ID != k1.ID || !bytes.Equal(k2.Private, k1.Private) {
		t.Fatalf("second start changed the key: created=%v err=%v", created, err)
	}
	if err := WriteNew(path, k1); err == nil {
		t.Fatal("WriteNew overwrote an existing key")
	}
}

// TestRotate: the retired key lands in the old-keys file with its expiry
// and the key file holds a new key.
func TestRotate(t *testing.T) {
	dir := t.TempDir()
	keyPath, oldPath := filepath.Join(dir, "signing.key"), filepath.Join(dir, "old_signing_keys")
	first, _, err := LoadOrGenerate(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := LoadOldKeys(oldPath); err != nil || len(keys) != 0 {
		t.Fatalf("old keys before any rotation: %v, %v", keys, err)
	}
	old, fresh, err := Rotate(keyPath, oldPath, 1234)
	if err != nil {
		t.Fatal(err)
	}
	if old.ID != first.ID || fresh.ID == first.ID {
		t.Fatalf("rotate: old %s fresh %s, first %s", old.ID, fresh.ID, first.ID)
	}
	now, _, err := LoadOrGenerate(keyPath)
	if err != nil || now.ID != fresh.ID {
		t.Fatalf("key file after rotation: %s, %v", now.ID, err)
	}
	keys, err := LoadOldKeys(oldPath)
	if err != nil || len(keys) != 1 || keys[0].ID != first.ID || !keys[0].Public.Equal(first.Public()) || keys[0].ExpiredTS != 1234 {
		t.Fatalf("old keys: %+v, %v", keys, err)
	}
	if err := os.WriteFile(oldPath, []byte("ed25519 x notbase64 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOldKeys(oldPath); err == nil {
		t.Fatal("a malformed old-keys file was accepted")
	}
}
