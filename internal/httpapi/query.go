package httpapi

import (
	"net/url"
	"strconv"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// TimestampQuery reads the ts and dir parameters of /timestamp_to_event,
// which the client and the federation API take alike: ts in milliseconds
// since the epoch, and whether dir asks to look backwards ("b") rather
// than forwards ("f").
func TimestampQuery(q url.Values) (ts int64, backwards bool, err error) {
	if q.Get("ts") == "" {
		return 0, false, mxerr.MissingParam("Missing ts parameter")
	}
	ts, err = strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil {
		return 0, false, mxerr.InvalidParam("ts must be an integer")
	}
	switch q.Get("dir") {
	case "f":
	case "b":
		backwards = true
	case "":
		return 0, false, mxerr.MissingParam("Missing dir parameter")
	default:
		return 0, false, mxerr.InvalidParam("dir must be f or b")
	}
	return ts, backwards, nil
}
