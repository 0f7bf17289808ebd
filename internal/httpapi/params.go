package httpapi

import (
	"github.com/myelin-chat/myelin/internal/ident"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"net/http"
	"regexp"
)

// MaxParamBytes bounds every path parameter. Each is a Matrix identifier
// or an opaque ID (room, user, event and device IDs, aliases, server
// names, event types, state keys, transaction, filter and media IDs),
// and the spec bounds identifiers at 255 bytes; Synapse answers an event
// type or state key over it with 413 M_TOO_LARGE, and so does Myelin for
// every path parameter. The bound also keeps index rows under
// PostgreSQL's btree limit.
const MaxParamBytes = ident.MaxBytes

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
