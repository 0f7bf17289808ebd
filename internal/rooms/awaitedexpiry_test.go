package rooms

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/rooms/roommodel"
)

// TestAwaitedRedactionsExpire: a redaction whose target never arrives
// is forgotten after awaitedRedactionTTL, so the target, should it come
// later still, is stored unredacted; a room holding more than
// awaitedRedactionsInRoom keeps its newest; rows recorded before the
// recorded_ts column (0) get the whole period from the first pass.
func TestAwaitedRedactionsExpire(t *testing.T) {
	eachVersionOpt(t, false, func(t *testing.T, env *authEnv) {
		if env.ver != 10 {
			t.Skip("one version is enough: expiry does not depend on it")
		}
		ctx := context.Background()
		now := time.Now()
		clock := now
		env.e.now = func() time.Time { return clock }
		defer func() { env.e.now = time.Now }()

		r := env.room(t, roomSpec{join: []string{userMod}, remote: []string{userRob}})
		prevs, depth := r.head()
		target := r.build(userRob, "m.room.message", nil, textMsg("late"), prevs, r.authFor(userRob, "m.room.message", nil, nil), depth+1)
		red, err := env.e.Send(ctx, SendRequest{RoomID: r.id, Sender: userMod, Type: spec.MRoomRedaction, Redacts: target.EventID(), Content: map[string]any{}})
		if err != nil || red.Status != roommodel.Accepted {
			t.Fatalf("redaction: %+v %v", red, err)
		}
		flood := "!flood" + randomString(6) + ":b.test"
		for i := range awaitedRedactionsInRoom + 5 {
			ts := now.Add(time.Duration(i) * time.Millisecond).UnixMilli()
			if err := env.db.AwaitRedaction(ctx, flood, fmt.Sprintf("$target%04d", i), fmt.Sprintf("$red%04d", i), ts); err != nil {
				t.Fatal(err)
			}
		}
		old := "!old" + randomString(6) + ":b.test"
		if err := env.db.AwaitRedaction(ctx, old, "$oldtarget", "$oldred", 0); err != nil {
			t.Fatal(err)
		}

		// Just before the period ends: only the flood's oldest go.
		clock = now.Add(awaitedRedactionTTL - time.Minute)
		n, err := env.e.ExpireAwaitedRedactions(ctx)
		if err != nil || n != 5 {
			t.Fatalf("first pass dropped %d (%v), want the flood's 5 oldest", n, err)
		}
		for i, want := range map[int]int{0: 0, 4: 0, 5: 1, awaitedRedactionsInRoom + 4: 1} {
			ids, err := env.db.AwaitedRedactions(ctx, flood, fmt.Sprintf("$target%04d", i))
			if err != nil || len(ids) != want {
				t.Errorf("flood target %d: %v %v, want %d waiting", i, ids, err, want)
			}
		}
		if ids, _ := env.db.AwaitedRedactions(ctx, r.id, target.EventID()); len(ids) != 1 {
			t.Errorf("the moderator's redaction before its period ended: %v", ids)
		}

		// Past it: the redaction and the flood go, the pre-column row
		// (stamped at the first pass) stays.
		clock = now.Add(awaitedRedactionTTL + time.Minute)
		if n, err = env.e.ExpireAwaitedRedactions(ctx); err != nil || n != 1+awaitedRedactionsInRoom {
			t.Fatalf("second pass dropped %d (%v), want %d", n, err, 1+awaitedRedactionsInRoom)
		}
		if ids, _ := env.db.AwaitedRedactions(ctx, old, "$oldtarget"); len(ids) != 1 {
			t.Errorf("a row recorded before recorded_ts expired without its period: %v", ids)
		}
		ev, err := env.e.Receive(ctx, target)
		if err != nil || ev.Status != roommodel.Accepted {
			t.Fatalf("the target: %+v %v", ev, err)
		}
		if ev.RedactedBy != "" || ev.Redacted() {
			t.Errorf("target arriving after its redaction expired is redacted by %q", ev.RedactedBy)
		}
	})
}
