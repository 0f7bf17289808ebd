package push

import (
	"sync"

	"github.com/myelin-chat/myelin/internal/cache"
)

// HoldEvaluation keeps the worker from evaluating the events it takes
// next until release is called (once or more), as a worker running far
// behind the events would be.
func (s *Service) HoldEvaluation() (release func()) {
	s.hold.Lock()
	return sync.OnceFunc(s.hold.Unlock)
}

// BoundRulesets replaces the rule set cache by an empty one of the
// given capacity (in users with default rules), before any event.
func (s *Service) BoundRulesets(capacity int) {
	s.rulesMu.Lock()
	defer s.rulesMu.Unlock()
	s.rulesets = cache.NewLRU[string, userRuleset](capacity)
}

// CachedRulesets is how many users' rule sets are cached.
func (s *Service) CachedRulesets() int { return s.rulesets.Len() }
