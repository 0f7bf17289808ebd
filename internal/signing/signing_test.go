package signing

import (
	"bytes"
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
