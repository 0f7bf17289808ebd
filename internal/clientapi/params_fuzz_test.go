package clientapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"

	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// badParam checks that a refused query parameter is a 400 with a
// parameter errcode, never anything that reads as the server's fault.
func badParam(t *testing.T, q string, err error) {
	t.Helper()
	var merr *mxerr.Error
	if !errors.As(err, &merr) || merr.Status != http.StatusBadRequest || merr.Code != "M_INVALID_PARAM" && merr.Code != "M_MISSING_PARAM" {
		t.Fatalf("%q refused with %v", q, err)
	}
}

// FuzzParsePage: dir, from and to of /messages (and the other paginated
// room endpoints). A page never starts after the stream's current
// position, and only b or f (or nothing where optional) is a direction.
func FuzzParsePage(f *testing.F) {
	for _, s := range []string{"dir=b", "dir=f&from=s5", "dir=b&from=s-3&to=s1", "from=s9223372036854775807", "dir=x", "dir=f&to=t",
		"dir=b&from=s1_2", "dir=b&from=%00", "dir=f&from=s1&from=s2", "dir=b&to=s-9223372036854775808", "%zz"} {
		f.Add(s, int64(100), false)
	}
	f.Fuzz(func(t *testing.T, rawQuery string, current int64, dirOptional bool) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return // net/http leaves such parameters out
		}
		p, err := parsePage(q, dirOptional, current)
		if err != nil {
			badParam(t, rawQuery, err)
			return
		}
		if d := q.Get("dir"); d != "b" && d != "f" && !(d == "" && dirOptional) {
			t.Fatalf("%q accepted", rawQuery)
		}
		if q.Get("from") != "" && p.from > current {
			t.Fatalf("%q: page from %d after the current position %d", rawQuery, p.from, current)
		}
	})
}

// FuzzParseLimit: limit parameters are non-negative and capped.
func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"10", "0", "-1", "99999999999999999999", "1e3", "+5", " 5", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, l string) {
		n, err := parseLimit(url.Values{"limit": {l}}, 10)
		if err != nil {
			badParam(t, l, err)
			return
		}
		if n < 0 || n > maxPageLimit {
			t.Fatalf("limit %q gave %d", l, n)
		}
	})
}

// FuzzParseHierarchyRequest: the parameters and from token of
// /hierarchy. Accepted tokens never skip backwards, limits stay within
// the page size, and the token of a page parses back to the same walk.
func FuzzParseHierarchyRequest(f *testing.F) {
	root := "!space:a.test"
	tok := hierarchyToken{Room: root, MaxDepth: -1, Skip: 7}.String()
	for _, s := range []string{"", "limit=5", "max_depth=0&suggested_only=true", "from=" + tok, "from=" + tok + "&max_depth=2", "from=!!!",
		"from=e30", "limit=0", "limit=-1", "max_depth=-1", "limit=99999999999999999999", "from=eyJuIjotMX0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		got, limit, err := parseHierarchyRequest(q, root)
		if err != nil {
			badParam(t, rawQuery, err)
			return
		}
		if got.Skip < 0 || limit < 1 || limit > maxHierarchyRooms || got.Room != root || got.MaxDepth < -1 {
			t.Fatalf("%q gave %+v, limit %d", rawQuery, got, limit)
		}
		q.Set("from", got.String())
		again, _, err := parseHierarchyRequest(q, root)
		if err != nil || again != got {
			t.Fatalf("%q: the next token gives %+v, %v; want %+v", rawQuery, again, err, got)
		}
	})
}

// FuzzThumbnailSpec: width, height and method of /thumbnail.
func FuzzThumbnailSpec(f *testing.F) {
	for _, s := range []string{"width=96&height=96", "width=96&height=96&method=crop", "width=0&height=1", "width=-1&height=5",
		"width=1e3&height=1", "width=9223372036854775807&height=1&method=scale", "height=1", "width=1&height=1&method=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rawQuery string) {
		r := httptest.NewRequest(http.MethodGet, "/thumbnail", nil)
		r.URL.RawQuery = rawQuery
		spec, err := media.ThumbnailSpecFromQuery(r.URL.Query())
		if err != nil {
			badParam(t, rawQuery, err)
			return
		}
		w, _ := strconv.Atoi(r.URL.Query().Get("width"))
		h, _ := strconv.Atoi(r.URL.Query().Get("height"))
		if spec.Method == "" || spec.Width != w || spec.Height != h {
			t.Fatalf("%q gave %+v", rawQuery, spec)
		}
	})
}
