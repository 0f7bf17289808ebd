package clientapi

import (
	"net/http"
	"net/url"

	"github.com/myelin-chat/myelin/internal/appservice"
	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// registerThirdParty adds the third-party network lookups (spec
// "Third-party Networks"), answered by the application services whose
// registrations list the protocol, and the services' own room
// directories (PUT /directory/list/appservice/{networkId}/{roomId}).
func (a *API) registerThirdParty(rt *httpapi.Router) {
	tp := appservice.NewThirdParty(a.appservices, a.asClient, nil)
	route := func(method, path string, h httpapi.Handler) {
		// Synapse lets guests browse the networks too.
		legacy(rt, httpapi.Route{Method: method, Path: path, Auth: httpapi.AuthRequired, AllowGuest: true, Handler: h})
	}
	route(http.MethodGet, "/thirdparty/protocols", func(r *http.Request, _ *httpapi.Caller) (any, error) {
		return tp.Protocols(r.Context(), ""), nil
	})
	route(http.MethodGet, "/thirdparty/protocol/{protocol}", func(r *http.Request, _ *httpapi.Caller) (any, error) {
		protocol := r.PathValue("protocol")
		if p, ok := tp.Protocols(r.Context(), protocol)[protocol]; ok {
			return p, nil
		}
		return nil, mxerr.NotFound("Unknown protocol")
	})
	// The lookups answer 200 with an empty list when nothing is found,
	// as Synapse does (the spec allows a 404; clients take either).
	for _, kind := range []appservice.ThirdPartyKind{appservice.ThirdPartyUser, appservice.ThirdPartyLocation} {
		route(http.MethodGet, "/thirdparty/"+string(kind)+"/{protocol}", func(r *http.Request, _ *httpapi.Caller) (any, error) {
			return tp.Lookup(r.Context(), kind, r.PathValue("protocol"), lookupFields(r.URL.Query())), nil
		})
	}
	route(http.MethodGet, "/thirdparty/user", func(r *http.Request, _ *httpapi.Caller) (any, error) {
		userID := r.URL.Query().Get("userid")
		if userID == "" {
			return nil, mxerr.MissingParam("Missing userid parameter")
		}
		return tp.ReverseLookup(r.Context(), appservice.ThirdPartyUser, userID), nil
	})
	route(http.MethodGet, "/thirdparty/location", func(r *http.Request, _ *httpapi.Caller) (any, error) {
		alias := r.URL.Query().Get("alias")
		if alias == "" {
			return nil, mxerr.MissingParam("Missing alias parameter")
		}
		return tp.ReverseLookup(r.Context(), appservice.ThirdPartyLocation, alias), nil
	})
	for _, method := range []string{http.MethodPut, http.MethodDelete} {
		legacy(rt, httpapi.Route{Method: method, Path: "/directory/list/appservice/{networkId}/{roomId}", Auth: httpapi.AuthRequired,
			Handler: a.putAppServiceListing})
	}
}

// lookupFields is what a lookup forwards to the services: the client's
// query string but its access token, as Synapse forwards it.
func lookupFields(q url.Values) url.Values {
	out := url.Values{}
	for k, v := range q {
		if k != "access_token" {
			out[k] = v
		}
	}
	return out
}

// putAppServiceListing is PUT (and, as Synapse serves it, DELETE)
// /directory/list/appservice/{networkId}/{roomId}: an application
// service publishes a room in its network's directory, which
// /publicRooms lists with that network's third_party_instance_id or
// include_all_networks. Only a service's as_token may (Synapse: 403
// "Only appservices can edit the appservice published room list").
func (a *API) putAppServiceListing(r *http.Request, c *httpapi.Caller) (any, error) {
	if c.AppService == "" {
		return nil, mxerr.Forbidden("Only appservices can edit the appservice published room list")
	}
	visibility := "private"
	if r.Method == http.MethodPut {
		var body struct {
			Visibility *string `json:"visibility"`
		}
		if err := httpapi.ReadJSON(r, &body); err != nil {
			return nil, err
		}
		// Synapse's default when the body omits it.
		visibility = "public"
		if body.Visibility != nil {
			visibility = *body.Visibility
		}
	}
	if visibility != "public" && visibility != "private" {
		return nil, mxerr.InvalidParam("Invalid visibility setting")
	}
	return empty, a.dir.SetAppServiceListed(r.Context(), c.AppService, r.PathValue("networkId"), r.PathValue("roomId"),
		visibility == "public")
}
