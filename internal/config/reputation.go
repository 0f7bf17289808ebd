package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Reputation configures reputation feeds (issue 16): the policy rooms
// the server subscribes to, how their weights blend into a verdict, and
// the log of what the server enforced.
type Reputation struct {
	// SystemMxidLocalpart is the server-owned user that joins the feeds'
	// rooms (reserved: nobody may register it).
	SystemMxidLocalpart string `yaml:"system_mxid_localpart"`
	// Feeds are subscribed at start, besides those the admin API adds.
	Feeds []ReputationFeed `yaml:"feeds"`
	// Thresholds sets, per action (events, invites, joins, directory,
	// user_directory, media, registration) and kind (user, room,
	// server), the score an entity needs to be enforced against; 1.0
	// when not set.
	Thresholds map[string]map[string]float64 `yaml:"thresholds"`
	// Disabled turns actions off: "action" for every kind, or
	// "action:kind".
	Disabled []string `yaml:"disabled"`
	// DecisionRetention and MaxDecisions bound the decision log: older
	// decisions, and the oldest beyond the count, are deleted.
	DecisionRetention time.Duration `yaml:"decision_retention"`
	MaxDecisions      int64         `yaml:"max_decisions"`
	// Republish, when Alias is set, keeps a policy room of that local
	// alias equal to the blend (issue 16 item 4).
	Republish ReputationRepublish `yaml:"republish"`
}

// ReputationRepublish is the policy room the server keeps equal to its
// blended view: the entities whose blended score reaches Threshold
// (1.0 when 0), written as plain entities, MSC4205 hashes only, or both.
type ReputationRepublish struct {
	Alias     string  `yaml:"alias"`
	Mode      string  `yaml:"mode"` // plain (default), hashed, both
	Threshold float64 `yaml:"threshold"`
}

// ReputationFeed is one subscription: a policy room by ID or alias,
// its weight, and whether it is an allow-list (its entries count
// against the others').
type ReputationFeed struct {
	Room   string  `yaml:"room"`
	Weight float64 `yaml:"weight"`
	Allow  bool    `yaml:"allow"`
}

// ReputationActions and ReputationKinds are the names Thresholds and
// Disabled accept (those of internal/reputation, which config cannot
// import).
var (
	ReputationActions = []string{"events", "invites", "joins", "directory", "user_directory", "media", "registration"}
	ReputationKinds   = []string{"user", "room", "server"}
)

func defaultReputation() Reputation {
	return Reputation{
		SystemMxidLocalpart: "myelin-reputation",
		Feeds:               []ReputationFeed{},
		Thresholds:          map[string]map[string]float64{},
		Disabled:            []string{},
		DecisionRetention:   90 * 24 * time.Hour,
		MaxDecisions:        1_000_000,
	}
}

// ParseReputationFeeds reads MYELIN_REPUTATION_FEEDS:
// "roomIdOrAlias=weight,..." where the weight may be left out (1.0) and
// a room prefixed "allow:" is an allow-list, e.g.
// "#spam:example.org=0.5,!abc:example.org,allow:#friends:example.org=1".
func ParseReputationFeeds(v string) ([]ReputationFeed, error) {
	out := []ReputationFeed{}
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		f := ReputationFeed{Weight: 1}
		if rest, ok := strings.CutPrefix(item, "allow:"); ok {
			f.Allow, item = true, rest
		}
		f.Room = item
		if i := strings.LastIndexByte(item, '='); i >= 0 {
			w, err := strconv.ParseFloat(strings.TrimSpace(item[i+1:]), 64)
			if err != nil {
				return nil, fmt.Errorf("want room=weight, got %q", item)
			}
			f.Room, f.Weight = strings.TrimSpace(item[:i]), w
		}
		out = append(out, f)
	}
	return out, nil
}

// validate reports the first invalid reputation setting.
func (r Reputation) validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("config: reputation.%s: %s", field, fmt.Sprintf(format, args...))
	}
	lp := r.SystemMxidLocalpart
	if lp == "" || strings.Trim(lp, "abcdefghijklmnopqrstuvwxyz0123456789._=-/+") != "" || len(lp) > 200 {
		return bad("system_mxid_localpart", "not a valid localpart: %q", lp)
	}
	for i, f := range r.Feeds {
		// Room IDs of version 12 rooms have no server part; aliases do.
		if !(len(f.Room) > 1 && f.Room[0] == '!') && !(strings.HasPrefix(f.Room, "#") && strings.Contains(f.Room, ":")) {
			return bad(fmt.Sprintf("feeds[%d].room", i), "want a room ID or alias, got %q", f.Room)
		}
		if math.IsNaN(f.Weight) || math.IsInf(f.Weight, 0) || f.Weight < 0 {
			return bad(fmt.Sprintf("feeds[%d].weight", i), "want a number of at least 0, got %v", f.Weight)
		}
	}
	if p := r.Republish; p.Alias != "" || p.Mode != "" {
		if !strings.HasPrefix(p.Alias, "#") || !strings.Contains(p.Alias, ":") {
			return bad("republish.alias", "want a local alias, got %q", p.Alias)
		}
		if !slices.Contains([]string{"", "plain", "hashed", "both"}, p.Mode) {
			return bad("republish.mode", "want plain, hashed or both, got %q", p.Mode)
		}
		if math.IsNaN(p.Threshold) || math.IsInf(p.Threshold, 0) || p.Threshold < 0 {
			return bad("republish.threshold", "must be 0 (1.0) or above")
		}
	}
	for action, kinds := range r.Thresholds {
		if !slices.Contains(ReputationActions, action) {
			return bad("thresholds", "unknown action %q", action)
		}
		for kind, t := range kinds {
			if !slices.Contains(ReputationKinds, kind) {
				return bad("thresholds."+action, "unknown kind %q", kind)
			}
			if math.IsNaN(t) || t <= 0 {
				return bad("thresholds."+action+"."+kind, "must be above 0")
			}
		}
	}
	for _, d := range r.Disabled {
		action, kind, hasKind := strings.Cut(d, ":")
		if !slices.Contains(ReputationActions, action) || hasKind && !slices.Contains(ReputationKinds, kind) {
			return bad("disabled", "want action or action:kind, got %q", d)
		}
	}
	if r.DecisionRetention <= 0 {
		return bad("decision_retention", "must be positive")
	}
	if r.MaxDecisions < 0 {
		return bad("max_decisions", "must be at least 0")
	}
	return nil
}
