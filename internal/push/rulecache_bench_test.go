package push_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/testserver"
)

// BenchmarkColdRulesets is the cost, per user, of the first event that
// reaches a user whose rule set is not cached (after a start, or for the
// members of a big room a server just joined): the stored m.push_rules
// read, then the rules built. cpu-us/user is the process's CPU time, the
// trustworthy figure on a loaded machine. Users with default rules, as
// nearly all are.
func BenchmarkColdRulesets(b *testing.B) {
	for _, legacy := range []bool{true, false} {
		name := map[bool]string{true: "json", false: "template"}[legacy]
		b.Run(name, func(b *testing.B) {
			s := testserver.Start(b, "", nil)
			ctx := context.Background()
			users := make([]string, 1000)
			for i := range users {
				users[i] = fmt.Sprintf("@member%d:%s", i, s.Config.ServerName)
			}
			before := cpuTime()
			for i := 0; b.Loop(); i++ {
				if err := s.Push().ColdRuleset(ctx, users[i%len(users)], legacy); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(b.N), "cpu-us/user")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
