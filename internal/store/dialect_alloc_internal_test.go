package store

import "testing"

// TestMapErrorOfNoErrorAllocatesNothing: every query and scan passes its
// error, nil nearly always, through the dialect's mapError; answering nil
// must not allocate (it did, 40 times per message stored).
func TestMapErrorOfNoErrorAllocatesNothing(t *testing.T) {
	for _, d := range []dialect{sqlite{}, postgres{}} {
		if n := testing.AllocsPerRun(100, func() { _ = d.mapError(nil) }); n != 0 {
			t.Errorf("%s: mapError(nil) allocates %.0f times", d.name(), n)
		}
	}
}
