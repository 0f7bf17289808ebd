package rooms

import (
	"encoding/json"
	"testing"
)

// hasKeyByDecoding is what hasKey answered before it scanned.
func hasKeyByDecoding(raw []byte, key string) bool {
	var c map[string]json.RawMessage
	if json.Unmarshal(raw, &c) != nil {
		return false
	}
	_, ok := c[key]
	return ok
}

var hasKeySeeds = []string{
	`{}`, `{"url":"mxc://a/b"}`, ` {"body":"x", "url": null}`, `{"URL":"x"}`, `{"u":"url"}`,
	`{"a":{"url":1}}`, `{"a":["url",{"url":2}],"b":3}`, `{"a":"\"url\"","url":1}`, `{"a\"":"x","url":1}`,
	`{"\u0075rl":"x"}`, `{"ur\l":1}`, `{"a":"\\","url":1}`, `{"a":"\\"}`, `[{"url":1}]`, `"url"`, `null`, `7`,
	`{"a":{},"url":[]}`, `{"a":[[],{}],"b":{"c":{"url":1}}}`, "{\n\t\"url\"\r: 1}", `{"urlx":1,"xurl":2}`,
}

// TestHasKeyAsDecoding: the scan answers as decoding into a map did.
func TestHasKeyAsDecoding(t *testing.T) {
	for _, raw := range hasKeySeeds {
		if got, want := hasKey([]byte(raw), "url"), hasKeyByDecoding([]byte(raw), "url"); got != want {
			t.Errorf("%s: hasKey %v, decoding %v", raw, got, want)
		}
	}
}

// TestHasKeyAllocatesNothing: an event's content is scanned, not decoded.
func TestHasKeyAllocatesNothing(t *testing.T) {
	raw := []byte(`{"msgtype":"m.image","body":"cat.png","info":{"w":1,"url":"x"},"url":"mxc://a/b"}`)
	if n := testing.AllocsPerRun(100, func() { _ = hasKey(raw, "url") }); n != 0 {
		t.Fatalf("hasKey allocates %.0f times", n)
	}
}

func FuzzHasKey(f *testing.F) {
	for _, s := range hasKeySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if !json.Valid([]byte(raw)) {
			return // contents of parsed events are valid JSON
		}
		if got, want := hasKey([]byte(raw), "url"), hasKeyByDecoding([]byte(raw), "url"); got != want {
			t.Fatalf("%q: hasKey %v, decoding %v", raw, got, want)
		}
	})
}
