package clientapi

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/rooms"
)

func (a *API) registerProfile(rt *httpapi.Router) {
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/profile/{userId}", Auth: httpapi.AuthOptional, Handler: a.getProfile})
	legacy(rt, httpapi.Route{Method: http.MethodGet, Path: "/profile/{userId}/{keyName}", Auth: httpapi.AuthOptional, Handler: a.getProfileField})
	legacy(rt, httpapi.Route{Method: http.MethodPut, Path: "/profile/{userId}/{keyName}", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.setProfileField})
	legacy(rt, httpapi.Route{Method: http.MethodDelete, Path: "/profile/{userId}/{keyName}", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.deleteProfileField})
}

// localProfileOwner resolves the {userId} of a profile path. Profiles of
// users on other servers need federation, which is not wired up yet.
func (a *API) localProfileOwner(r *http.Request) (string, error) {
	lp, local := a.accounts.LocalpartOf(r.PathValue("userId"))
	if !local {
		return "", mxerr.NotFound("Profile not found")
	}
	return lp, nil
}

func (a *API) getProfile(r *http.Request, _ *httpapi.Caller) (any, error) {
	lp, err := a.localProfileOwner(r)
	if err != nil {
		return nil, err
	}
	return a.accounts.Profile(r.Context(), lp)
}

func (a *API) getProfileField(r *http.Request, _ *httpapi.Caller) (any, error) {
	lp, err := a.localProfileOwner(r)
	if err != nil {
		return nil, err
	}
	p, err := a.accounts.Profile(r.Context(), lp)
	if err != nil {
		return nil, err
	}
	key := r.PathValue("keyName")
	v, ok := p[key]
	if !ok {
		return nil, mxerr.NotFound("Profile field not found")
	}
	return map[string]json.RawMessage{key: v}, nil
}

// profileWriter checks that the caller may change the profile: their own,
// or anyone's for a server admin (Synapse lets admins do so).
func (a *API) profileWriter(r *http.Request, c *httpapi.Caller) (string, error) {
	target := r.PathValue("userId")
	lp, local := a.accounts.LocalpartOf(target)
	if target != c.UserID && !(c.IsAdmin && local) {
		return "", mxerr.Forbidden("Cannot change another user's profile")
	}
	return lp, nil
}

func (a *API) setProfileField(r *http.Request, c *httpapi.Caller) (any, error) {
	lp, err := a.profileWriter(r, c)
	if err != nil {
		return nil, err
	}
	var body map[string]json.RawMessage
	if err := httpapi.ReadJSON(r, &body); err != nil {
		return nil, err
	}
	key := r.PathValue("keyName")
	value, ok := body[key]
	if !ok {
		return nil, mxerr.MissingParam("Missing key '%s'", key)
	}
	if err := a.accounts.SetProfileField(r.Context(), lp, key, value); err != nil {
		return nil, err
	}
	return empty, a.propagateProfile(r.Context(), lp, key)
}

func (a *API) deleteProfileField(r *http.Request, c *httpapi.Caller) (any, error) {
	lp, err := a.profileWriter(r, c)
	if err != nil {
		return nil, err
	}
	key := r.PathValue("keyName")
	if err := a.accounts.DeleteProfileField(r.Context(), lp, key); err != nil {
		return nil, err
	}
	return empty, a.propagateProfile(r.Context(), lp, key)
}

// propagateProfile sends a fresh join event into every room the user is
// joined to when their display name or avatar changes, as Synapse does,
// so that member lists and timelines show the new profile.
func (a *API) propagateProfile(ctx context.Context, localpart, key string) error {
	if key != "displayname" && key != "avatar_url" {
		return nil
	}
	userID := a.accounts.UserID(localpart)
	joined, err := a.roomStore.MembershipsOf(ctx, userID, spec.Join)
	if err != nil {
		return err
	}
	content := a.memberProfile(ctx, localpart)
	for _, m := range joined {
		_, err := a.rooms.SetMembership(ctx, rooms.MembershipRequest{
			Sender: userID, RoomID: m.RoomID, Target: userID, Membership: spec.Join, Content: content,
		})
		if err != nil {
			// One room refusing the update (the user lost the right to
			// change their membership there) must not fail the others.
			if _, ok := mxerr.As(err); ok {
				continue
			}
			return err
		}
	}
	return nil
}
