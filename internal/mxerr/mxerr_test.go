package mxerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

// TestConstructors: each constructor answers the status the spec (or
// Synapse, where the spec names none) gives its errcode.
func TestConstructors(t *testing.T) {
	for _, tc := range []struct {
		err    *Error
		status int
		code   string
	}{
		{Forbidden("x"), http.StatusForbidden, "M_FORBIDDEN"},
		{UnknownToken("x"), http.StatusUnauthorized, "M_UNKNOWN_TOKEN"},
		{MissingToken("x"), http.StatusUnauthorized, "M_MISSING_TOKEN"},
		{BadJSON("x"), http.StatusBadRequest, "M_BAD_JSON"},
		{NotJSON("x"), http.StatusBadRequest, "M_NOT_JSON"},
		{NotFound("x"), http.StatusNotFound, "M_NOT_FOUND"},
		{LimitExceeded(5), http.StatusTooManyRequests, "M_LIMIT_EXCEEDED"},
		{Unrecognized(http.StatusMethodNotAllowed, "x"), http.StatusMethodNotAllowed, "M_UNRECOGNIZED"},
		{Unknown("x"), http.StatusInternalServerError, "M_UNKNOWN"},
		{UserInUse("x"), http.StatusBadRequest, "M_USER_IN_USE"},
		{InvalidUsername("x"), http.StatusBadRequest, "M_INVALID_USERNAME"},
		{InvalidParam("x"), http.StatusBadRequest, "M_INVALID_PARAM"},
		{MissingParam("x"), http.StatusBadRequest, "M_MISSING_PARAM"},
		{TooLarge("x"), http.StatusRequestEntityTooLarge, "M_TOO_LARGE"},
		{UserDeactivated("x"), http.StatusForbidden, "M_USER_DEACTIVATED"},
		{GuestAccessForbidden("x"), http.StatusForbidden, "M_GUEST_ACCESS_FORBIDDEN"},
		{Unauthorized("x"), http.StatusUnauthorized, "M_UNAUTHORIZED"},
		{WeakPassword("x"), http.StatusBadRequest, "M_WEAK_PASSWORD"},
		{Exclusive("x"), http.StatusBadRequest, "M_EXCLUSIVE"},
		{CannotOverwriteMedia("x"), http.StatusConflict, "M_CANNOT_OVERWRITE_MEDIA"},
		{NotYetUploaded("x"), http.StatusGatewayTimeout, "M_NOT_YET_UPLOADED"},
	} {
		if tc.err.Status != tc.status || tc.err.Code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.code, tc.err.Status, tc.err.Code, tc.status, tc.code)
		}
	}
}

func TestMessageFormatting(t *testing.T) {
	e := InvalidParam("bad %s: %d", "limit", 7)
	if e.Message != "bad limit: 7" {
		t.Fatalf("message %q", e.Message)
	}
	// The message is a format: callers pass user input as an argument.
	if got := NotFound("100%% sure").Message; got != "100% sure" {
		t.Fatalf("message %q", got)
	}
	if got := e.Error(); got != "M_INVALID_PARAM (400): bad limit: 7" {
		t.Fatalf("Error() = %q", got)
	}
}

// TestBody: the JSON written holds errcode, error and the extra fields;
// the first UIA challenge (no errcode) is the extra fields alone.
func TestBody(t *testing.T) {
	raw, _ := json.Marshal(LimitExceeded(1500).Body())
	var got map[string]any
	_ = json.Unmarshal(raw, &got)
	if got["errcode"] != "M_LIMIT_EXCEEDED" || got["error"] != "Too many requests" || got["retry_after_ms"] != float64(1500) || len(got) != 3 {
		t.Fatalf("limit exceeded body: %s", raw)
	}
	uia := (&Error{Status: http.StatusUnauthorized}).With("session", "s1").With("flows", []any{})
	body := uia.Body()
	if _, ok := body["errcode"]; ok {
		t.Fatalf("a challenge without errcode has one: %v", body)
	}
	if _, ok := body["error"]; ok {
		t.Fatalf("a challenge without errcode has an error message: %v", body)
	}
	if body["session"] != "s1" || len(body) != 2 {
		t.Fatalf("challenge body: %v", body)
	}
	// Extra fields never override errcode and error.
	e := Forbidden("no").With("errcode", "M_OTHER").With("error", "other")
	if b := e.Body(); b["errcode"] != "M_FORBIDDEN" || b["error"] != "no" {
		t.Fatalf("extra fields replaced errcode/error: %v", b)
	}
}

// TestCopiesDoNotShare: With and WithStatus return copies; the original,
// often a shared value, is unchanged.
func TestCopiesDoNotShare(t *testing.T) {
	base := Forbidden("no").With("a", 1)
	b := base.With("b", 2)
	c := base.With("c", 3)
	if _, ok := base.Extra["b"]; ok {
		t.Fatal("With changed the original")
	}
	if _, ok := b.Extra["c"]; ok {
		t.Fatal("two copies share their extra fields")
	}
	if b.Extra["a"] != 1 || c.Extra["a"] != 1 {
		t.Fatal("a copy lost the original's fields")
	}
	s := base.WithStatus(http.StatusBadGateway)
	if base.Status != http.StatusForbidden || s.Status != http.StatusBadGateway || s.Code != "M_FORBIDDEN" {
		t.Fatalf("WithStatus: original %d, copy %d %s", base.Status, s.Status, s.Code)
	}
}

func TestAs(t *testing.T) {
	wrapped := fmt.Errorf("loading: %w", NotFound("gone"))
	if e, ok := As(wrapped); !ok || e.Code != "M_NOT_FOUND" {
		t.Fatalf("As through %%w: %v %v", e, ok)
	}
	if e, ok := As(errors.New("plain")); ok || e != nil {
		t.Fatalf("As of a plain error: %v %v", e, ok)
	}
	if _, ok := As(nil); ok {
		t.Fatal("As(nil) found an error")
	}
}
