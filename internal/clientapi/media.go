package clientapi

import (
	"net/http"

	"github.com/myelin-chat/myelin/internal/httpapi"
	"github.com/myelin-chat/myelin/internal/media"
	"github.com/myelin-chat/myelin/internal/mxerr"
)

// Content repository (spec "Content repository"). Uploads stay under
// /_matrix/media; downloads moved to the authenticated
// /_matrix/client/v1/media in spec 1.11, and the old unauthenticated
// ones are frozen for new media (media.enable_authenticated_media).
func (a *API) registerMedia(rt *httpapi.Router) {
	if a.media == nil {
		return
	}
	limit := a.cfg.Media.MaxUploadBytes
	for _, v := range []string{"v3", "r0"} {
		p := "/_matrix/media/" + v
		rt.Add(httpapi.Route{Method: http.MethodPost, Path: p + "/upload", Auth: httpapi.AuthRequired, MaxBodyBytes: limit, Handler: a.upload})
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/config", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.mediaConfig})
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/preview_url", Auth: httpapi.AuthRequired, Handler: a.previewURL})
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/download/{serverName}/{mediaId}", Raw: a.legacyDownload})
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/download/{serverName}/{mediaId}/{fileName}", Raw: a.legacyDownload})
		rt.Add(httpapi.Route{Method: http.MethodGet, Path: p + "/thumbnail/{serverName}/{mediaId}", Raw: a.legacyThumbnail})
	}
	rt.Add(httpapi.Route{Method: http.MethodPut, Path: "/_matrix/media/v3/upload/{serverName}/{mediaId}", Auth: httpapi.AuthRequired, MaxBodyBytes: limit, Handler: a.uploadTo})
	rt.Add(httpapi.Route{Method: http.MethodPost, Path: "/_matrix/media/v1/create", Auth: httpapi.AuthRequired, Handler: a.createMedia})
	v1(rt, httpapi.Route{Method: http.MethodGet, Path: "/media/config", Auth: httpapi.AuthRequired, AllowGuest: true, Handler: a.mediaConfig})
	v1(rt, httpapi.Route{Method: http.MethodGet, Path: "/media/preview_url", Auth: httpapi.AuthRequired, Handler: a.previewURL})
	for _, p := range []string{"/media/download/{serverName}/{mediaId}", "/media/download/{serverName}/{mediaId}/{fileName}"} {
		v1(rt, httpapi.Route{Method: http.MethodGet, Path: p, Auth: httpapi.AuthRequired, AllowGuest: true, Raw: a.download})
	}
	v1(rt, httpapi.Route{Method: http.MethodGet, Path: "/media/thumbnail/{serverName}/{mediaId}", Auth: httpapi.AuthRequired, AllowGuest: true, Raw: a.thumbnail})
}

func (a *API) upload(r *http.Request, c *httpapi.Caller) (any, error) {
	if r.ContentLength > a.cfg.Media.MaxUploadBytes {
		return nil, mxerr.TooLarge("Upload exceeds the %d byte limit", a.cfg.Media.MaxUploadBytes)
	}
	uri, err := a.media.Upload(r.Context(), c.UserID, uploadType(r), r.URL.Query().Get("filename"), r.Body)
	if err != nil {
		return nil, err
	}
	return map[string]string{"content_uri": uri}, nil
}

func uploadType(r *http.Request) string {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

func (a *API) createMedia(r *http.Request, c *httpapi.Caller) (any, error) {
	uri, expires, err := a.media.Create(r.Context(), c.UserID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"content_uri": uri, "unused_expires_at": expires}, nil
}

func (a *API) uploadTo(r *http.Request, c *httpapi.Caller) (any, error) {
	if r.ContentLength > a.cfg.Media.MaxUploadBytes {
		return nil, mxerr.TooLarge("Upload exceeds the %d byte limit", a.cfg.Media.MaxUploadBytes)
	}
	err := a.media.UploadTo(r.Context(), c.UserID, r.PathValue("serverName"), r.PathValue("mediaId"),
		uploadType(r), r.URL.Query().Get("filename"), r.Body)
	if err != nil {
		return nil, err
	}
	return empty, nil
}

func (a *API) mediaConfig(*http.Request, *httpapi.Caller) (any, error) { return a.media.Config(), nil }

func (a *API) previewURL(r *http.Request, c *httpapi.Caller) (any, error) {
	u := r.URL.Query().Get("url")
	if u == "" {
		return nil, mxerr.MissingParam("Missing url parameter")
	}
	return a.media.Preview(r.Context(), c.UserID, u)
}

func (a *API) download(w http.ResponseWriter, r *http.Request, c *httpapi.Caller) {
	a.serveDownload(w, r, false, bypassQuarantine(r, c))
}

// bypassQuarantine is Synapse's admin_unsafely_bypass_quarantine=true: a
// server admin may read quarantined media on the authenticated endpoints.
func bypassQuarantine(r *http.Request, c *httpapi.Caller) string {
	if c != nil && c.IsAdmin && r.URL.Query().Get("admin_unsafely_bypass_quarantine") == "true" {
		return c.UserID
	}
	return ""
}

func (a *API) legacyDownload(w http.ResponseWriter, r *http.Request, _ *httpapi.Caller) {
	a.serveDownload(w, r, true, "")
}

func (a *API) thumbnail(w http.ResponseWriter, r *http.Request, c *httpapi.Caller) {
	a.serveThumbnail(w, r, false, bypassQuarantine(r, c))
}

func (a *API) legacyThumbnail(w http.ResponseWriter, r *http.Request, _ *httpapi.Caller) {
	a.serveThumbnail(w, r, true, "")
}

func (a *API) serveDownload(w http.ResponseWriter, r *http.Request, legacy bool, bypassedBy string) {
	req, err := mediaRequest(r, legacy)
	req.QuarantineBypassedBy = bypassedBy
	if err == nil {
		var content *media.Content
		content, err = a.media.Download(r.Context(), r.PathValue("serverName"), r.PathValue("mediaId"), req)
		if err == nil {
			// The optional last segment renames the download.
			if name := r.PathValue("fileName"); name != "" {
				content.Filename = name
			}
			media.WriteContent(w, r, content)
			return
		}
	}
	a.mediaError(w, r, err)
}

func (a *API) serveThumbnail(w http.ResponseWriter, r *http.Request, legacy bool, bypassedBy string) {
	req, err := mediaRequest(r, legacy)
	req.QuarantineBypassedBy = bypassedBy
	if err == nil {
		var spec media.ThumbnailSpec
		spec, err = media.ThumbnailSpecFromQuery(r.URL.Query())
		if err == nil {
			var content *media.Content
			content, err = a.media.Thumbnail(r.Context(), r.PathValue("serverName"), r.PathValue("mediaId"), spec, req)
			if err == nil {
				media.WriteContent(w, r, content)
				return
			}
		}
	}
	a.mediaError(w, r, err)
}

func (a *API) mediaError(w http.ResponseWriter, r *http.Request, err error) {
	if _, ok := mxerr.As(err); !ok && r.Context().Err() == nil {
		a.media.Log().ErrorContext(r.Context(), "internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	media.SetSafetyHeaders(w.Header())
	httpapi.WriteError(w, err)
}

// mediaRequest reads timeout_ms (spec 1.7).
func mediaRequest(r *http.Request, legacy bool) (media.Request, error) {
	timeout, err := media.ParseTimeout(r)
	return media.Request{Legacy: legacy, Timeout: timeout}, err
}
