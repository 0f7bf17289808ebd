package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

// ReadJSON reads a request body that must be a JSON object and decodes it
// into v. Malformed input is M_NOT_JSON, JSON of the wrong shape is
// M_BAD_JSON (Synapse's split), a body over the limit is M_TOO_LARGE.
func ReadJSON(r *http.Request, v any) error {
	return readJSON(r, v, false)
}

// ReadOptionalJSON is ReadJSON for endpoints whose body may be empty.
func ReadOptionalJSON(r *http.Request, v any) error {
	return readJSON(r, v, true)
}

func readJSON(r *http.Request, v any, optional bool) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return mxerr.TooLarge("Request body exceeds %d bytes", tooLarge.Limit)
		}
		if e, ok := mxerr.As(err); ok {
			return e // a body that arrived too slowly (PaceBodies)
		}
		return mxerr.NotJSON("Could not read the request body")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		if optional {
			return nil
		}
		return mxerr.NotJSON("Content not JSON: the body is empty")
	}
	return DecodeObject(raw, v)
}

// DecodeObject decodes raw bytes that must be a JSON object.
func DecodeObject(raw []byte, v any) error {
	// encoding/json silently replaces invalid UTF-8; the spec requires
	// UTF-8, so refuse it before it can reach storage.
	if !utf8.Valid(raw) {
		return mxerr.NotJSON("Content not JSON: invalid UTF-8")
	}
	if !json.Valid(raw) {
		return mxerr.NotJSON("Content not JSON")
	}
	if b := bytes.TrimSpace(raw); b[0] != '{' {
		return mxerr.BadJSON("Content must be a JSON object")
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return mxerr.BadJSON("Invalid type for field '%s': expected %s", typeErr.Field, typeErr.Type)
		}
		return mxerr.BadJSON("Invalid JSON: %v", err)
	}
	return nil
}

// RawJSON is an answer already encoded, written as it is: one made of
// stored events (a send_join answer of tens of thousands) is not parsed
// again by encoding/json, which validates and compacts every byte of a
// json.RawMessage (a third of a second for a 20 MB answer, issue 14).
// The handler vouches that it is valid JSON.
type RawJSON []byte

// MarshalJSON lets a RawJSON sit inside another answer (send_join v1's
// [200, body]).
func (r RawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// WriteJSON writes v with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	if raw, ok := v.(RawJSON); ok {
		writeBody(w, status, raw)
		return
	}
	// Encoded into a pooled buffer rather than by json.Marshal, whose
	// answer is a fresh copy of its own pooled buffer: one allocation of
	// the whole body per answer, 7 % of what issue 20's load run
	// allocated (every woken /sync's answer).
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer putJSONBuffer(buf)
	buf.Reset()
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		writeBody(w, http.StatusInternalServerError, []byte(`{"errcode":"M_UNKNOWN","error":"Internal server error"}`))
		return
	}
	// Encode ends the value with a newline, Marshal does not.
	writeBody(w, status, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}))
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// jsonBuffers holds WriteJSON's buffers. One that grew past
// maxPooledJSON (an initial sync, a big room's state) is left to the
// collector rather than kept for the small answers that follow.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledJSON = 64 << 10

func putJSONBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledJSON {
		jsonBuffers.Put(b)
	}
}

// WriteError writes err as a Matrix error. Errors that are not Matrix
// errors are internal: logged by the caller, shown as M_UNKNOWN.
func WriteError(w http.ResponseWriter, err error) {
	e, ok := mxerr.As(err)
	if !ok {
		e = mxerr.Unknown("Internal server error")
	}
	if ra, ok := e.Extra["retry_after_ms"].(int64); ok && e.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", itoaCeilSeconds(ra))
	}
	WriteJSON(w, e.Status, e.Body())
}

func itoaCeilSeconds(ms int64) string {
	s := (ms + 999) / 1000
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
