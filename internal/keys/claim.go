package keys

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/store"
)

// ClaimResponse is the answer of /keys/claim (client and federation).
type ClaimResponse struct {
	OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
	Failures    map[string]any                                   `json:"failures"`
}

// Claim takes one key per device and algorithm asked for: a one-time key
// (deleted, so never handed out twice) or, when none is left, the
// device's fallback key (marked used). Other servers' users are claimed
// from their servers within timeout.
func (s *Service) Claim(ctx context.Context, want map[string]map[string]string, timeout time.Duration) (*ClaimResponse, error) {
	resp := &ClaimResponse{OneTimeKeys: map[string]map[string]map[string]json.RawMessage{}, Failures: map[string]any{}}
	remote := map[string]map[string]map[string]string{}
	local := map[string]map[string]string{}
	for user, devices := range want {
		if s.IsLocal(user) {
			local[user] = devices
			continue
		}
		server := serverOf(user)
		if server == "" {
			continue
		}
		if remote[server] == nil {
			remote[server] = map[string]map[string]string{}
		}
		remote[server][user] = devices
	}
	if err := s.claimLocal(ctx, local, resp); err != nil {
		return nil, err
	}
	if len(remote) == 0 {
		return resp, nil
	}
	eachServer(ctx, s.log, remote, timeout, resp.Failures, func(ctx context.Context, server string, users map[string]map[string]string) (func(), error) {
		if s.fed == nil {
			return nil, errNoFederation
		}
		res, err := s.fed.ClaimKeys(ctx, spec.ServerName(s.server), spec.ServerName(server), users)
		return func() {
			for user, devices := range res.OneTimeKeys {
				if _, asked := users[user]; asked {
					resp.OneTimeKeys[user] = devices
				}
			}
		}, err
	})
	return resp, nil
}

// ClaimLocal answers a federation /user/keys/claim: local users only.
func (s *Service) ClaimLocal(ctx context.Context, want map[string]map[string]string) (*ClaimResponse, error) {
	resp := &ClaimResponse{OneTimeKeys: map[string]map[string]map[string]json.RawMessage{}, Failures: map[string]any{}}
	local := map[string]map[string]string{}
	for user, devices := range want {
		if s.IsLocal(user) {
			local[user] = devices
		}
	}
	return resp, s.claimLocal(ctx, local, resp)
}

func (s *Service) claimLocal(ctx context.Context, want map[string]map[string]string, resp *ClaimResponse) error {
	defer s.countsChanged()
	for user, devices := range want {
		for device, alg := range devices {
			k, _, err := s.store.ClaimOneTimeKey(ctx, user, device, alg)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if resp.OneTimeKeys[user] == nil {
				resp.OneTimeKeys[user] = map[string]map[string]json.RawMessage{}
			}
			resp.OneTimeKeys[user][device] = map[string]json.RawMessage{k.Algorithm + ":" + k.KeyID: json.RawMessage(k.JSON)}
		}
		// The owner's next /sync reports the lower key count, prompting
		// the device to upload more.
		s.wake(user)
	}
	return nil
}
