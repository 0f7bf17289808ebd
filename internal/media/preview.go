package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"

	"github.com/myelin-chat/myelin/internal/cache"
	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/outbound"
)

// URL previews (/media/preview_url): the OpenGraph data of a page, with
// its image copied into the content repository, as Synapse does.

// previewTTL is how long a preview is reused (Synapse caches an hour).
const previewTTL = time.Hour

type previewer struct {
	s      *Service
	cfg    config.URLPreview
	policy *outbound.Policy
	client *http.Client

	mu    sync.Mutex
	cache *cache.LRU[string, cachedPreview]
}

type cachedPreview struct {
	og      map[string]any
	expires time.Time
}

// newPreviewer fetches pages a user names, so through the outbound
// policy, with the previews' own allow list on top (Synapse:
// url_preview_ip_range_whitelist).
func newPreviewer(s *Service, cfg config.URLPreview, policy *outbound.Policy) (*previewer, error) {
	pp, err := policy.With(nil, cfg.IPRangeWhitelist)
	if err != nil {
		return nil, fmt.Errorf("media.url_preview.ip_range_whitelist: %w", err)
	}
	return &previewer{s: s, cfg: cfg, policy: pp,
		client: pp.Client(outbound.ClientOptions{Timeout: cfg.Timeout, UserAgent: "Myelin URL preview", MaxRedirects: 10}),
		cache:  cache.NewLRU[string, cachedPreview](1000)}, nil
}

// get fetches a URL through the policy: refused addresses fail before
// any connection is made.
func (p *previewer) get(ctx context.Context, rawURL string) (*http.Response, error) {
	return fetchURL(ctx, p.policy, p.client, rawURL)
}

// fetchURL checks a URL against policy (scheme and address), then GETs
// it with client, which checks again at dial time and on redirects.
func fetchURL(ctx context.Context, policy *outbound.Policy, client *http.Client, rawURL string) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if err := policy.CheckURL(ctx, u); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	return client.Do(req)
}

// Preview answers the OpenGraph data of rawURL for user.
func (s *Service) Preview(ctx context.Context, user, rawURL string) (map[string]any, error) {
	p := s.previews
	if !p.cfg.Enabled {
		// Synapse does not serve the endpoint at all then.
		return nil, mxerr.Unrecognized(http.StatusNotFound, "URL previews are disabled")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, mxerr.InvalidParam("url must be an http or https URL")
	}
	u.Fragment = ""
	key := u.String()
	p.mu.Lock()
	c, ok := p.cache.Get(key)
	p.mu.Unlock()
	if ok && s.now().Before(c.expires) {
		return c.og, nil
	}
	og, err := p.fetch(ctx, user, u)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.cache.Put(key, cachedPreview{og: og, expires: s.now().Add(previewTTL)})
	p.mu.Unlock()
	return og, nil
}

// fetch downloads a page (or image) within the size and time limits and
// extracts its preview.
func (p *previewer) fetch(ctx context.Context, user string, u *url.URL) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	resp, err := p.get(ctx, u.String())
	if err != nil {
		// The details (address, port, errno, resolver) stay in the log:
		// an answer telling a closed port from an open one, or naming
		// what a name resolves to, would map the server's network.
		p.s.log.DebugContext(ctx, "preview fetch", "url", u.String(), "err", err)
		if errors.Is(err, outbound.ErrRefused) {
			return nil, mxerr.Forbidden("IP address blocked")
		}
		return nil, remoteFailed("Failed to fetch the URL")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, remoteFailed("The URL answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxBytes+1))
	if err != nil {
		p.s.log.DebugContext(ctx, "preview read", "url", u.String(), "err", err)
		return nil, remoteFailed("Failed to read the URL")
	}
	if int64(len(body)) > p.cfg.MaxBytes {
		return nil, remoteFailed("The page is larger than %d bytes", p.cfg.MaxBytes)
	}
	ct := resp.Header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case strings.HasPrefix(mt, "image/"):
		// An image previews as itself.
		og := map[string]any{}
		p.storeImage(ctx, user, og, body, mt, resp.Request.URL)
		return og, nil
	case mt == "text/html" || mt == "application/xhtml+xml":
		og := parseOpenGraph(body, ct)
		if img, ok := og["og:image"].(string); ok {
			delete(og, "og:image")
			if ref, err := resp.Request.URL.Parse(img); err == nil {
				p.fetchImage(ctx, user, og, ref)
			}
		}
		return og, nil
	}
	return map[string]any{}, nil
}

// fetchImage copies a page's og:image into the content repository; a
// preview without its image is still a preview, so failures only drop it.
func (p *previewer) fetchImage(ctx context.Context, user string, og map[string]any, ref *url.URL) {
	resp, err := p.get(ctx, ref.String())
	if err != nil {
		p.s.log.Debug("preview image", "url", ref.String(), "err", err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, p.cfg.MaxBytes+1))
	if err != nil || int64(len(body)) > p.cfg.MaxBytes {
		return
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	p.storeImage(ctx, user, og, body, mt, ref)
}

// storeImage keeps image bytes as local media of the user and describes
// them with the spec's og:image (mxc://) and matrix:image:size.
func (p *previewer) storeImage(ctx context.Context, user string, og map[string]any, body []byte, mt string, from *url.URL) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(body))
	if err != nil {
		return
	}
	if !strings.HasPrefix(mt, "image/") {
		mt = "image/" + format
	}
	name := ""
	if parts := strings.Split(from.Path, "/"); len(parts) > 0 {
		name = parts[len(parts)-1]
	}
	mxc, err := p.s.Upload(ctx, user, mt, name, bytes.NewReader(body))
	if err != nil {
		p.s.log.Warn("storing preview image", "err", err)
		return
	}
	og["og:image"] = mxc
	og["og:image:type"] = mt
	og["og:image:width"] = cfg.Width
	og["og:image:height"] = cfg.Height
	og["matrix:image:size"] = len(body)
}

// parseOpenGraph reads og:* meta tags, falling back to <title> and the
// description meta tag for og:title and og:description (Synapse's
// fallbacks).
func parseOpenGraph(body []byte, contentType string) map[string]any {
	og := map[string]any{}
	r, err := charset.NewReader(bytes.NewReader(body), contentType)
	if err != nil {
		r = bytes.NewReader(body)
	}
	z := html.NewTokenizer(r)
	var title, description string
	inTitle := false
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			if _, ok := og["og:title"]; !ok && title != "" {
				og["og:title"] = strings.TrimSpace(title)
			}
			if _, ok := og["og:description"]; !ok && description != "" {
				og["og:description"] = description
			}
			return og
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			switch tok.Data {
			case "title":
				inTitle = tt == html.StartTagToken && title == ""
			case "meta":
				readMeta(tok, og, &description)
			}
		case html.TextToken:
			if inTitle {
				title += string(z.Text())
			}
		case html.EndTagToken:
			inTitle = false
		}
	}
}

func readMeta(tok html.Token, og map[string]any, description *string) {
	var property, name, content string
	for _, a := range tok.Attr {
		switch strings.ToLower(a.Key) {
		case "property":
			property = a.Val
		case "name":
			name = strings.ToLower(a.Val)
		case "content":
			content = a.Val
		}
	}
	if strings.HasPrefix(property, "og:") {
		if _, seen := og[property]; !seen {
			og[property] = content
		}
	} else if name == "description" && *description == "" {
		*description = content
	}
}
