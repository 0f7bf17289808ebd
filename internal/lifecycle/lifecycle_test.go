package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/myelin-chat/myelin/internal/lifecycle"
)

func untilDone(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func TestGroupStartsAndStops(t *testing.T) {
	var g lifecycle.Group
	g.Add("a", lifecycle.Func(untilDone))
	g.Add("b", lifecycle.Func(untilDone))
	if got := g.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("names %v", got)
	}
	g.Start(context.Background())
	if got := g.Running(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("running after Start: %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := g.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := g.Running(); len(got) != 0 {
		t.Fatalf("running after Stop: %v", got)
	}
}

// A worker that ignores its context is named when the deadline passes,
// and errors the workers return are reported with their names.
func TestGroupStopReports(t *testing.T) {
	var g lifecycle.Group
	release := make(chan struct{})
	defer close(release)
	g.Add("stubborn", lifecycle.Func(func(context.Context) error {
		<-release
		return nil
	}))
	g.Add("failing", lifecycle.Func(func(context.Context) error { return errors.New("disk full") }))
	g.Add("polite", lifecycle.Func(untilDone))
	g.Start(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := g.Stop(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop: %v, want the deadline", err)
	}
	for _, want := range []string{"[stubborn]", "failing: disk full"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Stop's error %q does not say %q", err, want)
		}
	}
	if got := g.Running(); !slices.Equal(got, []string{"stubborn"}) {
		t.Errorf("running: %v", got)
	}
}

func TestStopBeforeStart(t *testing.T) {
	var g lifecycle.Group
	g.Add("a", lifecycle.Func(untilDone))
	if err := g.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}
