package appservice

import (
	"context"
	"log/slog"
	"time"
)

// queryTimeout bounds a user or alias query: a client waits for it.
const queryTimeout = 10 * time.Second

// QueryUser asks the services whose user namespaces hold userID whether
// they have it (spec "Query User"), as Synapse does when a client asks
// about an unknown local user. True when one answered that it has
// created the user; the caller then looks again.
func (r *Registry) QueryUser(ctx context.Context, c *Client, userID string) bool {
	for _, reg := range r.UserInterested(userID) {
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		ok, err := c.QueryUser(qctx, reg, userID)
		cancel()
		if err != nil {
			slog.Default().Warn("appservice user query failed", "appservice", reg.ID, "err", err)
		}
		if ok {
			return true
		}
	}
	return false
}

// QueryAlias asks the services whose alias namespaces hold alias whether
// they have it (spec "Query Room Alias"); true when one has created it.
func (r *Registry) QueryAlias(ctx context.Context, c *Client, alias string) bool {
	for _, reg := range r.AliasInterested(alias) {
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		ok, err := c.QueryAlias(qctx, reg, alias)
		cancel()
		if err != nil {
			slog.Default().Warn("appservice alias query failed", "appservice", reg.ID, "err", err)
		}
		if ok {
			return true
		}
	}
	return false
}
