package push

import "sync"

// HoldEvaluation keeps the worker from evaluating the events it takes
// next until release is called (once or more), as a worker running far
// behind the events would be.
func (s *Service) HoldEvaluation() (release func()) {
	s.hold.Lock()
	return sync.OnceFunc(s.hold.Unlock)
}
