package push

import (
	"context"
	"sync"

	"github.com/myelin-chat/myelin/internal/accountdata"
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

// ColdRuleset loads userID's rule set as the first event that reaches
// them does, the cache emptied first; legacy builds the default rules
// as before defaultRulesFor (written out, read back, compiled), for
// BenchmarkColdRulesets to compare.
func (s *Service) ColdRuleset(ctx context.Context, userID string, legacy bool) error {
	s.rulesets.Remove(userID)
	if !legacy {
		_, err := s.ruleset(ctx, userID)
		return err
	}
	stored, err := s.accountData.Stored(ctx, userID, "", accountdata.TypePushRules)
	if err != nil {
		return err
	}
	rs, _, err := evaluatorRules(parseUserRules(stored).merged(userID))
	if err != nil {
		return err
	}
	compiled, _ := compileRules(rs, s.opts.Limits)
	s.rulesets.PutCost(userID, userRuleset{rules: compiled, isDefault: len(stored) == 0}, 1+compiled.size)
	return nil
}

// Queued is how many events wait in the queue, not yet taken by the
// worker.
func (s *Service) Queued() int { return s.queue.Len() }
