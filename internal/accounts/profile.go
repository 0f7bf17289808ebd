package accounts

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// Limits from the spec (v1.16 extended profiles) and Synapse.
const (
	maxProfileBytes   = 64 << 10
	maxProfileKeyLen  = 255
	maxDisplayNameLen = 256
	maxAvatarURLLen   = 1000
)

// profileKey is the spec's keyName pattern.
var profileKey = regexp.MustCompile(`^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$`)

// Profile returns a local user's profile fields; M_NOT_FOUND when the
// user does not exist.
func (s *Service) Profile(ctx context.Context, localpart string) (map[string]json.RawMessage, error) {
	if _, err := s.store.GetUser(ctx, localpart); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, mxerr.NotFound("Profile not found")
		}
		return nil, err
	}
	return s.store.Profile(ctx, localpart)
}

// SetProfileField validates and stores one field.
func (s *Service) SetProfileField(ctx context.Context, localpart, key string, value json.RawMessage) error {
	if len(key) > maxProfileKeyLen {
		return &mxerr.Error{Status: 400, Code: "M_KEY_TOO_LARGE", Message: "Profile key exceeds 255 bytes"}
	}
	if !profileKey.MatchString(key) {
		return mxerr.InvalidParam("Invalid profile key")
	}
	switch key {
	case "displayname", "avatar_url", "m.tz":
		var str string
		if err := json.Unmarshal(value, &str); err != nil {
			if string(value) == "null" && key != "m.tz" {
				// Clients clear the name or avatar by setting null.
				return s.store.DeleteProfileField(ctx, localpart, key)
			}
			return mxerr.BadJSON("%s must be a string", key)
		}
		// Over its length, a field is 400 M_TOO_LARGE, as Synapse
		// answers for a device name: the value is well-formed, only long.
		if key == "displayname" && len(str) > maxDisplayNameLen {
			return mxerr.TooLarge("displayname is longer than %d bytes", maxDisplayNameLen).WithStatus(http.StatusBadRequest)
		}
		if key == "avatar_url" {
			if len(str) > maxAvatarURLLen {
				return mxerr.TooLarge("avatar_url is longer than %d bytes", maxAvatarURLLen).WithStatus(http.StatusBadRequest)
			}
		}
		if str == "" && key != "m.tz" {
			return s.store.DeleteProfileField(ctx, localpart, key)
		}
	}
	current, err := s.store.Profile(ctx, localpart)
	if err != nil {
		return err
	}
	current[key] = value
	if size, _ := json.Marshal(current); len(size) > maxProfileBytes {
		return &mxerr.Error{Status: 400, Code: "M_PROFILE_TOO_LARGE", Message: "The profile would exceed 64 KiB"}
	}
	return s.store.SetProfileField(ctx, localpart, key, value)
}

// DeleteProfileField removes a field; removing an absent one succeeds.
func (s *Service) DeleteProfileField(ctx context.Context, localpart, key string) error {
	if !profileKey.MatchString(key) {
		return mxerr.InvalidParam("Invalid profile key")
	}
	return s.store.DeleteProfileField(ctx, localpart, key)
}
