package ident

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/mxerr"
)

func TestCheckText(t *testing.T) {
	for s, ok := range map[string]bool{
		"": true, "@alice:hs1.test": true, "😀": true, "a\u202Eb": true, "\uFFFE": true,
		"a\x00b": false, "\xff": false, "a\xc0\x80": false, "\xed\xa0\x80": false, "a\xe2\x82": false,
	} {
		err := CheckText(s)
		if (err == nil) != ok || err != nil && !errors.Is(err, ErrNotText) {
			t.Errorf("CheckText(%q) = %v, want ok=%v", s, err, ok)
		}
		// Wrapped as the store wraps it, the error is still the client's:
		// 400 M_INVALID_PARAM.
		if e, isMx := mxerr.As(fmt.Errorf("store: argument 1: %w", err)); !ok && (!isMx || e.Status != 400 || e.Code != "M_INVALID_PARAM") {
			t.Errorf("CheckText(%q): Matrix error %v", s, e)
		}
	}
	if CheckID(strings.Repeat("a", MaxBytes)) != nil || !errors.Is(CheckID(strings.Repeat("a", MaxBytes+1)), ErrNotText) {
		t.Error("CheckID: the bound is 255 bytes")
	}
}

func TestFreeText(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain", "a\x00b": "ab", "a\xffb": "a\uFFFDb", "\x00\xff\x00": "\uFFFD", "😀": "😀",
	} {
		if got := FreeText(in); got != want || CheckText(got) != nil {
			t.Errorf("FreeText(%q) = %q, want %q", in, got, want)
		}
	}
	if FreeTextPtr(nil) != nil {
		t.Error("FreeTextPtr(nil) != nil")
	}
	s := "a\x00"
	if got := FreeTextPtr(&s); *got != "a" {
		t.Errorf("FreeTextPtr = %q", *got)
	}
}
