package appservice

import (
	"encoding/json"
	"testing"
)

// TestEphemeralTxnNames checks the JSON names of every part, stable and
// unstable, against what mautrix-go's appservice.Transaction and the
// MSCs read, and that an empty part is left out while events is not.
func TestEphemeralTxnNames(t *testing.T) {
	var txn ephemeralTxn
	if !txn.empty() {
		t.Fatal("a new transaction is not empty")
	}
	txn.Ephemeral = []json.RawMessage{json.RawMessage(`{"type":"m.typing"}`)}
	txn.ToDevice = []json.RawMessage{json.RawMessage(`{"type":"m.room.encrypted"}`)}
	txn.DeviceLists = &deviceLists{Changed: []string{"@a:x"}, Left: []string{}}
	txn.OTKCounts = otkCounts{"@b:x": {"DEV": {"signed_curve25519": 3}}}
	txn.Fallback = fallbackKeys{"@b:x": {"DEV": {"signed_curve25519"}}}
	if txn.empty() {
		t.Fatal("a full transaction is empty")
	}
	txn.fillUnstable()
	b, err := json.Marshal(&txn)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	pairs := [][2]string{
		{"ephemeral", "de.sorunome.msc2409.ephemeral"},
		{"to_device", "de.sorunome.msc2409.to_device"},
		{"device_lists", "org.matrix.msc3202.device_lists"},
		{"device_one_time_keys_count", "org.matrix.msc3202.device_one_time_keys_count"},
		{"device_one_time_keys_count", "org.matrix.msc3202.device_one_time_key_counts"},
		{"device_unused_fallback_key_types", "org.matrix.msc3202.device_unused_fallback_key_types"},
	}
	for _, p := range pairs {
		if m[p[0]] == nil || string(m[p[0]]) != string(m[p[1]]) {
			t.Errorf("%s = %s, %s = %s", p[0], m[p[0]], p[1], m[p[1]])
		}
	}
	if string(m["events"]) != "[]" {
		t.Errorf("events = %s, want []", m["events"])
	}
	var empty ephemeralTxn
	empty.fillUnstable()
	b, _ = json.Marshal(&empty)
	if string(b) != `{"events":[]}` {
		t.Errorf("an empty transaction marshals as %s", b)
	}
}
