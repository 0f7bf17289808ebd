package reputation

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestMediaOf(t *testing.T) {
	for _, c := range []struct {
		content string
		want    []MediaRef
	}{
		{`{"msgtype":"m.image","body":"x","url":"mxc://a.test/img","info":{"thumbnail_url":"mxc://a.test/thumb"}}`,
			[]MediaRef{{"a.test", "img"}, {"a.test", "thumb"}}},
		{`{"msgtype":"m.file","file":{"url":"mxc://b.test/enc"},"info":{"thumbnail_file":{"url":"mxc://b.test/encthumb"}}}`,
			[]MediaRef{{"b.test", "enc"}, {"b.test", "encthumb"}}},
		{`{"membership":"join","avatar_url":"mxc://c.test/av"}`, []MediaRef{{"c.test", "av"}}},
		{`{"url":"mxc://d.test/same","info":{"thumbnail_url":"mxc://d.test/same"}}`, []MediaRef{{"d.test", "same"}}},
		// Only the known paths are read: a body quoting a URI is not media.
		{`{"body":"see mxc://e.test/quoted","formatted_body":"mxc://e.test/x"}`, nil},
		// Not mxc://server/id.
		{`{"url":"https://f.test/x"}`, nil},
		{`{"url":"mxc://"}`, nil},
		{`{"url":"mxc://f.test"}`, nil},
		{`{"url":"mxc://f.test/"}`, nil},
		{`{"url":"mxc:///id"}`, nil},
		{`{"url":"mxc://f.test/a/b"}`, nil},
		{`{"url":"mxc://f.test/a\u0000b"}`, nil},
		{`{"url":"mxc://` + strings.Repeat("s", 300) + `/id"}`, nil},
		{`{"url":{"nested":"mxc://g.test/x"}}`, nil},
		{`{"url":["mxc://g.test/x"]}`, nil},
		{`not json mxc://h.test/x`, nil},
	} {
		if got := MediaOf([]byte(c.content)); !slices.Equal(got, c.want) {
			t.Errorf("MediaOf(%s) = %v, want %v", c.content, got, c.want)
		}
	}
}

func FuzzMediaOf(f *testing.F) {
	for _, seed := range []string{
		`{"url":"mxc://a.test/img","info":{"thumbnail_url":"mxc://a.test/thumb"}}`,
		`{"file":{"url":"mxc://b.test/enc"}}`,
		`{"avatar_url":"mxc://c.test/av"}`,
		`{"url":"mxc://f.test/a\u0000b"}`,
		"{\"url\":\"mxc://\xff/x\"}",
		`{"url":"mxc://x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		refs := MediaOf(content)
		if len(refs) > len(mediaPaths) {
			t.Fatalf("%d refs from %d paths", len(refs), len(mediaPaths))
		}
		for _, r := range refs {
			if r.Origin == "" || r.MediaID == "" || strings.Contains(r.MediaID, "/") {
				t.Fatalf("bad ref %+v", r)
			}
			if back, ok := parseMXC("mxc://" + r.Origin + "/" + r.MediaID); !ok || back != r {
				t.Fatalf("ref %+v does not parse back", r)
			}
		}
	})
}

// roomIndex is a MediaRoomIndex over a map.
type roomIndex struct {
	rooms map[string][]string
	err   error
}

func (x roomIndex) RoomsOf(_ context.Context, origin, mediaID string) ([]string, error) {
	return x.rooms["mxc://"+origin+"/"+mediaID], x.err
}

func TestPointsRoomMedia(t *testing.T) {
	ctx := context.Background()
	ban := Verdict{Listed: true, Score: 1}
	l := &listing{listed: map[Action]map[string]Verdict{
		ActionMedia:  {"room !bad:x.test": ban},
		ActionEvents: {"room !ok:x.test": ban}, // another action: not media
	}}
	idx := roomIndex{rooms: map[string][]string{
		"mxc://here.test/local":    {"!ok:x.test", "!bad:x.test"},
		"mxc://far.test/remote":    {"!bad:x.test"},
		"mxc://far.test/elsewhere": {"!ok:x.test"},
	}}
	p := NewPoints(l, "here.test", WithMediaRooms(idx))
	for _, c := range []struct {
		server, id string
		want       bool
	}{
		{"here.test", "local", true},
		{"far.test", "remote", true},
		{"far.test", "elsewhere", false},
		{"far.test", "unknown", false},
	} {
		if got := p.RefusesMedia(ctx, c.server, c.id); got != c.want {
			t.Errorf("RefusesMedia(%s, %s) = %v, want %v", c.server, c.id, got, c.want)
		}
	}
	want := []string{"media !bad:x.test mxc://here.test/local", "media !bad:x.test mxc://far.test/remote"}
	if !slices.Equal(l.recorded, want) {
		t.Errorf("recorded %q, want %q", l.recorded, want)
	}
	if NewPoints(l, "here.test").RefusesMedia(ctx, "here.test", "local") {
		t.Error("without the index, a room's media is refused")
	}
	if NewPoints(l, "here.test", WithMediaRooms(roomIndex{rooms: idx.rooms, err: errors.New("down")})).RefusesMedia(ctx, "far.test", "remote") {
		t.Error("a failed index read refuses media")
	}
}
