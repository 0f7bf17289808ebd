package directory

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// MaxHierarchyRooms caps a hierarchy page (Synapse's MAX_ROOMS); it is
// also the default limit.
const MaxHierarchyRooms = 50

// HierarchyToken is the state a hierarchy page token carries: the walk is
// recomputed from the current state and the rooms already returned are
// skipped, so that no session needs storing.
type HierarchyToken struct {
	Room      string `json:"r"`
	Suggested bool   `json:"s"`
	MaxDepth  int    `json:"d"`
	Skip      int    `json:"n"`
}

func (t HierarchyToken) String() string {
	raw, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// ParseHierarchyQuery reads a hierarchy request's parameters into the
// token of the page asked for, and the page size.
func ParseHierarchyQuery(q url.Values, root string) (HierarchyToken, int, error) {
	tok := HierarchyToken{Room: root, Suggested: q.Get("suggested_only") == "true", MaxDepth: -1}
	if s := q.Get("max_depth"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return tok, 0, mxerr.InvalidParam("max_depth must be a non-negative integer")
		}
		tok.MaxDepth = n
	}
	limit := MaxHierarchyRooms
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return tok, 0, mxerr.InvalidParam("limit must be an integer greater than zero")
		}
		limit = min(n, MaxHierarchyRooms)
	}
	if from := q.Get("from"); from != "" {
		var prev HierarchyToken
		raw, err := base64.RawURLEncoding.DecodeString(from)
		if err != nil || json.Unmarshal(raw, &prev) != nil || prev.Skip < 0 {
			return tok, 0, mxerr.InvalidParam("Unknown pagination token")
		}
		if prev.Room != tok.Room || prev.Suggested != tok.Suggested || prev.MaxDepth != tok.MaxDepth {
			return tok, 0, mxerr.InvalidParam("suggested_only and max_depth cannot change on paginated requests")
		}
		tok.Skip = prev.Skip
	}
	return tok, limit, nil
}
