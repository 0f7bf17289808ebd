package config

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
)

// RTCFocus is a MatrixRTC transport (MSC4143), e.g. Element Call's
// LiveKit SFU behind its JWT service: {type: livekit,
// livekit_service_url: https://livekit-jwt.example.org}.
type RTCFocus struct {
	Type              string `yaml:"type" json:"type"`
	LiveKitServiceURL string `yaml:"livekit_service_url" json:"livekit_service_url,omitempty"`
}

// applyMatrixRTCEnv reads MYELIN_MAX_EVENT_DELAY_MS and MYELIN_RTC_FOCI
// (a JSON list of foci, as rtc_foci in the well-known document).
func (c *Config) applyMatrixRTCEnv(env func(string) (string, bool)) error {
	if v, ok := env("MYELIN_MAX_EVENT_DELAY_MS"); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("config: MYELIN_MAX_EVENT_DELAY_MS: %w", err)
		}
		c.Rooms.MaxEventDelayMS = n
	}
	if v, ok := env("MYELIN_RTC_FOCI"); ok {
		foci := []RTCFocus{}
		if v != "" {
			if err := json.Unmarshal([]byte(v), &foci); err != nil {
				return fmt.Errorf("config: MYELIN_RTC_FOCI: want a JSON list of {type, livekit_service_url}: %w", err)
			}
		}
		c.WellKnown.RTCFoci = foci
	}
	return nil
}

func (c *Config) validateMatrixRTC() error {
	if c.Rooms.MaxEventDelayMS < 0 {
		return fmt.Errorf("config: rooms.max_event_delay_ms: must not be negative")
	}
	for i, f := range c.WellKnown.RTCFoci {
		if f.Type == "" {
			return fmt.Errorf("config: well_known.rtc_foci[%d]: type is required", i)
		}
		if f.Type == "livekit" {
			u, err := url.Parse(f.LiveKitServiceURL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("config: well_known.rtc_foci[%d]: livekit_service_url must be an http(s) URL, got %q", i, f.LiveKitServiceURL)
			}
		}
	}
	return nil
}
