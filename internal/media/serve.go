package media

import (
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Serving media safely (spec "Serving inline content", Synapse's
// add_file_headers): the bytes are whatever a user uploaded, so browsers
// must never run them as part of a page of ours.

// inlineTypes may be served inline: browsers only ever render them as
// what they claim to be (the spec's list).
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true, "application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true, "audio/wave": true,
	"audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

// textTypes get a charset when they have none, as Synapse adds, so that
// a browser does not guess one (UTF-7 tricks).
var textTypes = map[string]bool{
	"text/css": true, "text/csv": true, "text/html": true, "text/calendar": true, "text/plain": true,
	"text/javascript": true, "application/json": true, "application/ld+json": true, "application/rtf": true,
	"image/svg+xml": true, "text/xml": true,
}

// contentSecurityPolicy is the spec's recommended policy plus Synapse's
// media-src 'self', letting a media URL opened directly play itself.
const contentSecurityPolicy = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; " +
	"style-src 'unsafe-inline'; media-src 'self'; object-src 'self';"

// servingHeaders computes the Content-Type and Content-Disposition of
// content: inline only for the safe types (and thumbnails, which are
// ours), attachment for everything else, HTML and SVG included.
func servingHeaders(c *Content) (contentType, disposition string) {
	contentType = c.ContentType
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || contentType == "" {
		contentType, mt, params = "application/octet-stream", "application/octet-stream", nil
	}
	if textTypes[mt] && params["charset"] == "" {
		contentType += "; charset=UTF-8"
	}
	disposition = "attachment"
	if inlineTypes[mt] || c.Thumbnail {
		disposition = "inline"
	}
	if c.Filename != "" {
		disposition += "; " + filenameParam(c.Filename)
	}
	return contentType, disposition
}

// filenameParam encodes a file name for Content-Disposition (RFC 6266):
// a plain token when it is one, else RFC 5987's filename*=utf-8”....
func filenameParam(name string) string {
	if isToken(name) {
		return "filename=" + name
	}
	return "filename*=utf-8''" + strings.ReplaceAll(url.PathEscape(name), "+", "%2B")
}

// isToken is RFC 2616's token: visible ASCII less the separators.
func isToken(s string) bool {
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", c) {
			return false
		}
	}
	return s != ""
}

// SetSafetyHeaders sets the headers every media answer carries, errors
// included (Synapse sets them before it knows the outcome).
func SetSafetyHeaders(h http.Header) {
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	// Spec 1.4: lets web clients embed media in cross-origin isolated pages.
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
}

// WriteContent serves content to a client.
func WriteContent(w http.ResponseWriter, r *http.Request, c *Content) {
	defer c.Body.Close()
	h := w.Header()
	SetSafetyHeaders(h)
	ct, disposition := servingHeaders(c)
	h.Set("Content-Type", ct)
	h.Set("Content-Disposition", disposition)
	if c.Size > 0 {
		h.Set("Content-Length", strconv.FormatInt(c.Size, 10))
	}
	// Media never changes under its URI (Synapse's caching headers).
	h.Set("Cache-Control", "public,max-age=86400,s-maxage=86400")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = io.Copy(w, c.Body)
	}
}
