package reputation

import (
	"context"
	"testing"
)

// listing is an Enforcer listing fixed entities per action, with what it
// recorded.
type listing struct {
	listed   map[Action]map[string]Verdict
	recorded []string
}

func (l *listing) Check(_ context.Context, action Action, kind Kind, entity, detail string) Verdict {
	v, ok := l.listed[action][string(kind)+" "+entity]
	if ok && detail != "" {
		l.recorded = append(l.recorded, string(action)+" "+entity+" "+detail)
	}
	return v
}

func TestPointsRules(t *testing.T) {
	ctx := context.Background()
	ban := Verdict{Listed: true, Score: 1, Reason: "spam"}
	takedown := Verdict{Listed: true, Score: 1, Takedown: true, Reason: "abuse"}
	l := &listing{listed: map[Action]map[string]Verdict{
		ActionEvents:        {"user @spam:evil.test": ban, "server takedown.test": takedown, "user @local:here.test": ban},
		ActionInvites:       {"server evil.test": ban, "room !bad:x.test": ban},
		ActionJoins:         {"room !bad:x.test": ban, "server blocked.test": ban},
		ActionDirectory:     {"room !bad:x.test": ban},
		ActionUserDirectory: {"user @spam:evil.test": ban},
		ActionMedia:         {"server evil.test": ban, "server here.test": ban},
		ActionRegistration:  {"user @spam:here.test": ban},
	}}
	p := NewPoints(l, "here.test")

	if hidden, down := p.EventVerdict(ctx, "@spam:evil.test", "$e1"); !hidden || down {
		t.Errorf("listed user: hidden %v takedown %v, want true false", hidden, down)
	}
	if hidden, down := p.EventVerdict(ctx, "@anyone:takedown.test", "$e2"); !hidden || !down {
		t.Errorf("user of a taken-down server: hidden %v takedown %v, want true true", hidden, down)
	}
	if p.HidesEvents(ctx, "@local:here.test") {
		t.Error("a local sender's events are hidden: only events received over federation are")
	}
	if p.HidesEvents(ctx, "@other:evil.test") {
		t.Error("an unlisted user of an unlisted server is hidden")
	}
	if _, refused := p.RefusesInvite(ctx, "@x:evil.test", "!ok:y.test", "$i1"); !refused {
		t.Error("invite from a user of a listed server not refused")
	}
	if reason, refused := p.RefusesInvite(ctx, "@x:fine.test", "!bad:x.test", "$i2"); !refused || reason != "spam" {
		t.Errorf("invite to a listed room: %q %v", reason, refused)
	}
	if _, refused := p.RefusesInvite(ctx, "@x:fine.test", "!ok:y.test", "$i3"); refused {
		t.Error("invite from an unlisted user refused")
	}
	if reason, refused := p.RefusesJoin(ctx, "@me:here.test", "!bad:x.test", nil); !refused || reason != "spam" {
		t.Errorf("join of a listed room: %q %v", reason, refused)
	}
	if _, refused := p.RefusesJoin(ctx, "@me:here.test", "!r:blocked.test", nil); !refused {
		t.Error("join of a room of a listed server not refused")
	}
	if _, refused := p.RefusesJoin(ctx, "@me:here.test", "!domainless", []string{"fine.test", "blocked.test"}); refused {
		t.Error("join of a version 12 room through an unlisted server and a listed one refused")
	}
	if _, refused := p.RefusesJoin(ctx, "@me:here.test", "!domainless2", []string{"blocked.test"}); !refused {
		t.Error("join of a version 12 room only through listed servers not refused")
	}
	if !p.HidesRoom(ctx, "!bad:x.test") || p.HidesRoom(ctx, "!ok:y.test") {
		t.Error("HidesRoom")
	}
	if !p.HidesUser(ctx, "@spam:evil.test") || p.HidesUser(ctx, "@ok:evil.test") {
		t.Error("HidesUser")
	}
	if !p.RefusesMedia(ctx, "evil.test", "m1") || p.RefusesMedia(ctx, "here.test", "m2") || p.RefusesMedia(ctx, "fine.test", "m3") {
		t.Error("RefusesMedia: a listed server's media refused, this server's and an unlisted server's served")
	}
	if _, refused := p.RefusesRegistration(ctx, "spam"); !refused {
		t.Error("registration of a listed localpart not refused")
	}
	if _, refused := p.RefusesRegistration(ctx, "fine"); refused {
		t.Error("registration of an unlisted localpart refused")
	}

	// Read paths and listings record nothing; arrivals and refusals do,
	// with the event, user, media or user ID as detail.
	want := []string{
		"events @spam:evil.test $e1", "events takedown.test $e2",
		"invites evil.test $i1", "invites !bad:x.test $i2",
		"joins !bad:x.test @me:here.test", "joins blocked.test @me:here.test", "joins blocked.test @me:here.test",
		"media evil.test mxc://evil.test/m1",
		"registration @spam:here.test @spam:here.test",
	}
	if len(l.recorded) != len(want) {
		t.Fatalf("recorded %q, want %q", l.recorded, want)
	}
	for i := range want {
		if l.recorded[i] != want[i] {
			t.Errorf("recorded[%d] = %q, want %q", i, l.recorded[i], want[i])
		}
	}
}

func TestPointsNilEnforcerEnforcesNothing(t *testing.T) {
	p := NewPoints(nil, "here.test")
	if p.HidesEvents(context.Background(), "@x:evil.test") {
		t.Error("a nil Enforcer hid events")
	}
}
