package media

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
)

// Servers that predate authenticated media (spec 1.11) do not serve
// /_matrix/federation/v1/media/download; their media is at the client
// download path, which they serve to other servers too. Synapse asks
// there when the federation endpoint is unknown to the other server
// (its federation_download_media and is_unknown_endpoint), and so does
// this one.

// errUnknownEndpoint is another server's answer that it does not serve
// the endpoint asked (not that the media is unknown).
var errUnknownEndpoint = errors.New("media: endpoint unknown to the remote server")

// unknownEndpoint reports whether an error answer means the endpoint is
// unknown, as Synapse's is_unknown_endpoint judges it: 404 or 405 with a
// body that is not JSON or has errcode M_UNRECOGNIZED (older servers
// answer without JSON), or 400 M_UNRECOGNIZED (older Synapse). A 404
// M_NOT_FOUND is a server that knows the endpoint and not the media.
// It consumes the body.
func unknownEndpoint(resp *http.Response) (bool, string) {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct {
		Code string `json:"errcode"`
	}
	isJSON := json.Unmarshal(data, &e) == nil
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return !isJSON || e.Code == "M_UNRECOGNIZED", e.Code
	case http.StatusBadRequest:
		return e.Code == "M_UNRECOGNIZED", e.Code
	}
	return false, e.Code
}

// legacyPaths are the client download paths asked in turn, v3 first and
// r0 for servers older still (as Synapse's download_media_v3/_r0).
var legacyPaths = []string{"/_matrix/media/v3/download/", "/_matrix/media/r0/download/"}

// askLegacy downloads mxc://server/mediaID from the client download
// path of a server that does not serve the federation one. The answer
// is the bytes themselves, typed by its headers; allow_remote=false
// keeps that server from fetching elsewhere on our behalf.
func (s *Service) askLegacy(ctx context.Context, server, mediaID, wait string) (*remotePart, error) {
	for _, prefix := range legacyPaths {
		path := prefix + url.PathEscape(server) + "/" + url.PathEscape(mediaID) + "?allow_remote=false&" + wait
		part, err := s.askPlain(ctx, server, path)
		if errors.Is(err, errUnknownEndpoint) {
			continue
		}
		return part, err
	}
	return nil, remoteFailed("%s serves no media download endpoint", server)
}

// askPlain sends a signed request for media answered with the bytes
// (not multipart).
func (s *Service) askPlain(ctx context.Context, server, path string) (*remotePart, error) {
	resp, err := s.remote.FetchMedia(ctx, server, path)
	if err != nil {
		s.log.DebugContext(ctx, "remote media", "server", server, "err", err)
		return nil, remoteFailed("Could not reach %s", server)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, remoteStatus(resp)
	}
	part := plainPart(resp)
	part.body = s.remoteBody(ctx, server, part.body)
	return part, nil
}

// plainPart is an answer whose body is the media, typed by its headers.
func plainPart(resp *http.Response) *remotePart {
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	var filename string
	if _, p, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		filename = p["filename"]
	}
	return &remotePart{contentType: ct, filename: filename, body: resp.Body}
}
