package selfcheck

import "testing"

// The key document comes from whatever answers on the checked address.
func FuzzVerifyKeys(f *testing.F) {
	f.Add([]byte(`{"server_name":"a.test","valid_until_ts":99999999999999,"verify_keys":{"ed25519:a":{"key":"l8Hft5qXKn1vfHrg3p4+W8gELQVo8N13JkluMfmn2sQ"}},"signatures":{"a.test":{"ed25519:a":"x"}}}`))
	f.Add([]byte(`{"server_name":"a.test","verify_keys":{"ed25519:a":{"key":"AAAA"}},"signatures":{"a.test":{"ed25519:a":""}}}`))
	f.Add([]byte("\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		if problem := verifyKeys(body, "a.test", "", nil); problem == "" {
			t.Fatalf("accepted a document nobody signed: %q", body)
		}
	})
}
