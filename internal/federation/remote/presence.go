package remote

import (
	"context"
	"strings"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/presence"
)

// JoinPresence sends presence to servers that newly share a room, as
// Synapse's presence handler does on membership changes: a local user's
// join sends their presence to the room's other servers, and a remote
// user's join sends the presence of the room's local users to the
// joiner's server. Otherwise another server hears of a local user's
// presence only when it next changes. It listens on the room engine's
// bus; the work runs in Run, off the engine's write path.
type JoinPresence struct {
	*joinWorker
	f *Service
	p *presence.Service
}

// maxPushesPerEDU bounds an m.presence EDU's pushes (a room may have
// many local members).
const maxPushesPerEDU = 50

// JoinPresence makes the listener; nil when nothing is to be sent
// (federation or presence off).
func (f *Service) JoinPresence(p *presence.Service) *JoinPresence {
	if f.d.Sender == nil || f.d.Bus == nil || !p.Enabled() {
		return nil
	}
	j := &JoinPresence{f: f, p: p}
	j.joinWorker = newJoinWorker(f.d.Bus, "federation.join-presence", "presence", f.d.Log, j.joined)
	return j
}

func (j *JoinPresence) joined(ctx context.Context, roomID, userID string) error {
	uid, err := spec.NewUserID(userID, true)
	if err != nil {
		return nil
	}
	server := string(uid.Domain())
	if server == j.f.d.ServerName {
		p, ok, err := j.p.LocalPush(ctx, userID)
		if err != nil || !ok {
			return err
		}
		j.f.queueForRoom(ctx, roomID, "m.presence", map[string]any{"push": []presence.Push{p}})
		return nil
	}
	if ok, err := j.f.d.Rooms.ServerAllowed(ctx, roomID, server); err != nil || !ok {
		return err
	}
	members, err := j.f.d.Store.JoinedMembers(ctx, roomID)
	if err != nil {
		return err
	}
	local := ":" + j.f.d.ServerName
	var pushes []presence.Push
	for _, m := range members {
		if !strings.HasSuffix(m, local) {
			continue
		}
		p, ok, err := j.p.LocalPush(ctx, m)
		if err != nil {
			return err
		}
		if ok {
			pushes = append(pushes, p)
		}
	}
	for len(pushes) > 0 {
		n := min(len(pushes), maxPushesPerEDU)
		if err := j.f.d.Sender.QueueEDU(ctx, []string{server}, "m.presence", map[string]any{"push": pushes[:n]}); err != nil {
			return err
		}
		pushes = pushes[n:]
	}
	return nil
}
