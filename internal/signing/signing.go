// Package signing loads and generates the server's ed25519 signing key in
// the file format Synapse and Dendrite share: one line
// "ed25519 <version> <unpadded base64 seed>".
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Key is a server signing key.
type Key struct {
	// ID is "ed25519:<version>".
	ID      string
	Private ed25519.PrivateKey
}

// Public is the verify key.
func (k Key) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// Generate makes a new key with a random version.
func Generate() (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, err
	}
	var v [4]byte
	if _, err := rand.Read(v[:]); err != nil {
		return Key{}, err
	}
	version := "a_" + strings.NewReplacer("+", "", "/", "", "=", "").Replace(base64.RawStdEncoding.EncodeToString(v[:]))
	return Key{ID: "ed25519:" + version, Private: priv}, nil
}

// Encode renders the key file line.
func (k Key) Encode() string {
	version := strings.TrimPrefix(k.ID, "ed25519:")
	return fmt.Sprintf("ed25519 %s %s\n", version, base64.RawStdEncoding.EncodeToString(k.Private.Seed()))
}

// Parse reads a key file's content; the first ed25519 line wins.
func Parse(data string) (Key, error) {
	for _, line := range strings.Split(data, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 3 || fields[0] != "ed25519" {
			return Key{}, fmt.Errorf("signing key: want \"ed25519 <version> <base64 seed>\", got %d fields", len(fields))
		}
		seed, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(fields[2], "="))
		if err != nil || len(seed) != ed25519.SeedSize {
			return Key{}, errors.New("signing key: the seed is not 32 bytes of base64")
		}
		if !validVersion(fields[1]) {
			return Key{}, fmt.Errorf("signing key: invalid key version %q", fields[1])
		}
		return Key{ID: "ed25519:" + fields[1], Private: ed25519.NewKeyFromSeed(seed)}, nil
	}
	return Key{}, errors.New("signing key: the file holds no key")
}

// validVersion applies the spec's key ID grammar: [a-zA-Z0-9_].
func validVersion(v string) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// LoadOrGenerate reads the key at path, creating it (mode 0600) if the
// file does not exist yet.
func LoadOrGenerate(path string) (key Key, created bool, err error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		key, err = Parse(string(raw))
		if err != nil {
			return Key{}, false, fmt.Errorf("%s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Key{}, false, err
	}
	key, err = Generate()
	if err != nil {
		return Key{}, false, err
	}
	if err := WriteNew(path, key); err != nil {
		return Key{}, false, err
	}
	return key, true, nil
}

// WriteNew writes a key file, refusing to overwrite an existing one: a
// server that loses its key cannot prove its old events were its own.
func WriteNew(path string, key Key) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(key.Encode()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// OldKey is a verify key the server no longer signs with: other servers
// still need it to check what it signed before ExpiredTS (milliseconds).
type OldKey struct {
	ID        string
	Public    ed25519.PublicKey
	ExpiredTS int64
}

// LoadOldKeys reads the old-keys file: one line per retired key,
// "ed25519 <version> <unpadded base64 public key> <expired_ts>". A
// missing file holds no keys.
func LoadOldKeys(path string) ([]OldKey, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []OldKey
	for i, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 || f[0] != "ed25519" || !validVersion(f[1]) {
			return nil, fmt.Errorf("%s:%d: want \"ed25519 <version> <base64 public key> <expired_ts>\"", path, i+1)
		}
		pub, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[2], "="))
		if err != nil || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s:%d: the public key is not 32 bytes of base64", path, i+1)
		}
		var ts int64
		if _, err := fmt.Sscan(f[3], &ts); err != nil || ts <= 0 {
			return nil, fmt.Errorf("%s:%d: invalid expired_ts %q", path, i+1, f[3])
		}
		out = append(out, OldKey{ID: "ed25519:" + f[1], Public: pub, ExpiredTS: ts})
	}
	return out, nil
}

// Rotate retires the key at keyPath: its public half is appended to the
// old-keys file with expiry now, and a new key replaces it. The old key
// stays valid for what it signed, as other servers learn from
// old_verify_keys.
func Rotate(keyPath, oldKeysPath string, nowMS int64) (old, fresh Key, err error) {
	raw, err := os.ReadFile(keyPath)
	if err != nil {
		return Key{}, Key{}, err
	}
	if old, err = Parse(string(raw)); err != nil {
		return Key{}, Key{}, err
	}
	if fresh, err = Generate(); err != nil {
		return Key{}, Key{}, err
	}
	f, err := os.OpenFile(oldKeysPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return Key{}, Key{}, err
	}
	line := fmt.Sprintf("ed25519 %s %s %d\n", strings.TrimPrefix(old.ID, "ed25519:"), base64.RawStdEncoding.EncodeToString(old.Public()), nowMS)
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return Key{}, Key{}, err
	}
	if err := f.Close(); err != nil {
		return Key{}, Key{}, err
	}
	// Written beside the key and renamed over it, so that a crash leaves
	// one whole key file.
	tmp := keyPath + ".new"
	_ = os.Remove(tmp)
	if err := WriteNew(tmp, fresh); err != nil {
		return Key{}, Key{}, err
	}
	return old, fresh, os.Rename(tmp, keyPath)
}
