package media

import (
	"testing"
)

// FuzzEventMXCs: the media URIs the room quarantine and the room media
// list read out of events, which other servers write. Whatever the
// JSON, every URI kept parses to a valid server name and media ID, and
// rebuilding it gives the URI back (nothing smuggled after the ID).
func FuzzEventMXCs(f *testing.F) {
	for _, s := range []string{
		`{"content":{"url":"mxc://example.org/abc","info":{"thumbnail_url":"mxc://example.org/def"}}}`,
		`{"content":{"file":{"url":"mxc://example.org/enc"},"info":{"thumbnail_file":{"url":"mxc://a.b/c"}}}}`,
		`{"content":{"url":42,"info":"x"}}`, `{"content":{"url":"mxc://example.org/a/b"}}`, `{"content":{"url":"mxc://bad name/x"}}`,
		`{"content":{"url":"mxc://example.org/"}}`, `[]`, `{"content":null}`, `not json`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, uri := range eventMXCs(raw) {
			ref, ok := parseMXC(uri)
			if !ok {
				continue
			}
			if checkRef(ref.Origin, ref.MediaID) != nil || MXC(ref.Origin, ref.MediaID) != uri {
				t.Fatalf("%q parsed to %+v", uri, ref)
			}
		}
	})
}
