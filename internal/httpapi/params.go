package httpapi

import (
	"net/http"
	"regexp"

	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// MaxParamBytes bounds every path parameter, before any handler runs.
// The spec bounds identifiers at 255 bytes, but handlers apply that with
// their own precise errors (M_KEY_TOO_LARGE for profile keys, 413 for
// event types and state keys); this bound only keeps what no identifier
// can be out of the store: SQLite indexes any length, PostgreSQL refuses
// btree index rows over about 2.7 kB, so a longer parameter answered 500
// on one engine and 200 on the other.
const MaxParamBytes = 4 * ident.MaxBytes

var wildcard = regexp.MustCompile(`\{([A-Za-z0-9_]+)(?:\.\.\.)?\}`)

// patternParams lists the wildcard names of a route pattern.
func patternParams(pattern string) []string {
	var names []string
	for _, m := range wildcard.FindAllStringSubmatch(pattern, -1) {
		names = append(names, m[1])
	}
	return names
}

// checkParams is the one place where the strings a request carries
// outside its JSON body are vetted before any handler sees them: path
// parameters and query values must be UTF-8 without NUL, which is what
// PostgreSQL's TEXT can hold (SQLite stores anything, so without this the
// two engines would answer such requests differently, PostgreSQL with a
// 500). JSON bodies are checked for UTF-8 by ReadJSON; identifiers inside
// them by the services that parse them, and the store refuses what
// slips through (ident.ErrNotText).
func checkParams(r *http.Request, names []string) error {
	for _, name := range names {
		v := r.PathValue(name)
		if err := ident.CheckText(v); err != nil {
			return mxerr.InvalidParam("Invalid path parameter %s: %s", name, err.Error())
		}
		if len(v) > MaxParamBytes {
			return mxerr.TooLarge("Path parameter %s is longer than %d bytes", name, MaxParamBytes)
		}
	}
	if r.URL.RawQuery == "" {
		return nil
	}
	for k, vs := range r.URL.Query() {
		if err := ident.CheckText(k); err != nil {
			return mxerr.InvalidParam("Invalid query parameter name: %s", err.Error())
		}
		for _, v := range vs {
			if err := ident.CheckText(v); err != nil {
				return mxerr.InvalidParam("Invalid query parameter %s: %s", k, err.Error())
			}
		}
	}
	return nil
}
