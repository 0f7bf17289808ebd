package clientapi_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"maunium.net/go/mautrix"
)

// syncKeys is the part of a /sync response about end-to-end encryption.
type syncKeys struct {
	NextBatch   string `json:"next_batch"`
	DeviceLists struct {
		Changed []string `json:"changed"`
		Left    []string `json:"left"`
	} `json:"device_lists"`
	OTKCounts      map[string]int `json:"device_one_time_keys_count"`
	UnusedFallback []string       `json:"device_unused_fallback_key_types"`
	ToDevice       struct {
		Events []struct {
			Sender  string         `json:"sender"`
			Type    string         `json:"type"`
			Content map[string]any `json:"content"`
		} `json:"events"`
	} `json:"to_device"`
}

// keysSync is one /sync (incremental when since is set), waiting up to
// timeout for news.
func keysSync(t *testing.T, c *mautrix.Client, since string, timeout time.Duration) *syncKeys {
	t.Helper()
	q := map[string]string{"timeout": strconv.FormatInt(timeout.Milliseconds(), 10)}
	if since != "" {
		q["since"] = since
	}
	var resp syncKeys
	if _, err := c.MakeRequest(context.Background(), http.MethodGet, c.BuildURLWithQuery(mautrix.ClientURLPath{"v3", "sync"}, q), nil, &resp); err != nil {
		t.Fatalf("sync as %s: %v", c.UserID, err)
	}
	return &resp
}
