package federation

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Content repository over federation (server-server spec "Content
// Repository", 1.11): other servers download this server's media, in
// multipart/mixed answers; local users' requests for other servers'
// media go out through the remote package's FetchMedia.

func (a *API) registerMedia(rt *httpapi.Router) {
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/federation/v1/media/download/{mediaId}", Raw: a.signedMedia(a.mediaDownload)})
	rt.Add(httpapi.Route{Method: http.MethodGet, Path: "/_matrix/federation/v1/media/thumbnail/{mediaId}", Raw: a.signedMedia(a.mediaThumbnail)})
}

// signedMedia is signed for handlers whose answer is not JSON.
func (a *API) signedMedia(h func(r *Request) (*media.Content, error)) func(http.ResponseWriter, *http.Request, *httpapi.Caller) {
	return func(w http.ResponseWriter, r *http.Request, _ *httpapi.Caller) {
		content, err := a.serveMedia(r, h)
		if err != nil {
			if _, ok := mxerr.As(err); !ok && r.Context().Err() == nil {
				a.d.Log.ErrorContext(r.Context(), "internal error", "path", r.URL.Path, "err", err)
			}
			httpapi.WriteError(w, err)
			return
		}
		if err := media.WriteMultipart(w, content); err != nil {
			a.d.Log.DebugContext(r.Context(), "writing media", "err", err)
		}
	}
}

func (a *API) serveMedia(r *http.Request, h func(r *Request) (*media.Content, error)) (*media.Content, error) {
	fr, err := a.verify(r)
	if err != nil {
		return nil, err
	}
	if a.d.Media == nil {
		return nil, mxerr.NotFound("Not found")
	}
	return h(fr)
}

// mediaRequest reads timeout_ms; federation serves local media only, so
// that no server can use this one as a proxy.
func mediaRequest(r *Request) (media.Request, error) {
	timeout, err := media.ParseTimeout(r.Request)
	return media.Request{LocalOnly: true, Timeout: timeout}, err
}

func (a *API) mediaDownload(r *Request) (*media.Content, error) {
	req, err := mediaRequest(r)
	if err != nil {
		return nil, err
	}
	return a.d.Media.Download(r.Context(), a.d.ServerName, r.PathValue("mediaId"), req)
}

func (a *API) mediaThumbnail(r *Request) (*media.Content, error) {
	req, err := mediaRequest(r)
	if err != nil {
		return nil, err
	}
	spec, err := media.ThumbnailSpecFromQuery(r.URL.Query())
	if err != nil {
		return nil, err
	}
	return a.d.Media.Thumbnail(r.Context(), a.d.ServerName, r.PathValue("mediaId"), spec, req)
}
