package appservice

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// requestTimeout bounds every request to a service; Synapse allows a
// transaction 60 seconds.
const requestTimeout = 60 * time.Second

// maxAnswerBytes bounds what is read of a service's answer.
const maxAnswerBytes = 64 << 10

// Client makes the homeserver's requests to application services
// (spec "Application Service API": transactions, queries, ping). The
// service's URL is the admin's choice in its registration, so it may
// be on loopback or a private network: unlike federation and media,
// these requests do not go through the outbound address policy.
type Client struct {
	HTTP *http.Client
}

// NewClient makes a client with bounded timeouts.
func NewClient() *Client {
	return &Client{HTTP: &http.Client{Timeout: requestTimeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

// StatusError is a service's answer other than 200.
type StatusError struct {
	Status int
	Body   []byte
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("application service answered %d: %.200s", e.Status, e.Body)
}

func (c *Client) do(ctx context.Context, reg *Registration, method, path string, body any) ([]byte, error) {
	if reg.URL == "" {
		return nil, fmt.Errorf("application service %s has no url", reg.ID)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, reg.URL+path, rd)
	if err != nil {
		return nil, err
	}
	// The spec's Authorization header; the access_token query parameter
	// is deprecated (v1.4) and not sent.
	req.Header.Set("Authorization", "Bearer "+reg.HSToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return out, &StatusError{Status: resp.StatusCode, Body: out}
	}
	return out, nil
}

// Transaction is the body of PUT /_matrix/app/v1/transactions/{txnId}.
type Transaction struct {
	Events []json.RawMessage `json:"events"`
	// Ephemeral is MSC2409's (spec v1.13) typing, receipts and presence;
	// not sent yet.
	Ephemeral []json.RawMessage `json:"ephemeral,omitempty"`
}

// SendTransaction pushes a transaction; the service acknowledges with 200.
func (c *Client) SendTransaction(ctx context.Context, reg *Registration, txnID string, txn Transaction) error {
	_, err := c.do(ctx, reg, http.MethodPut, "/_matrix/app/v1/transactions/"+url.PathEscape(txnID), txn)
	return err
}

// QueryUser asks whether the service has userID (200: it created it).
func (c *Client) QueryUser(ctx context.Context, reg *Registration, userID string) (bool, error) {
	_, err := c.do(ctx, reg, http.MethodGet, "/_matrix/app/v1/users/"+url.PathEscape(userID), nil)
	return answered(err)
}

// QueryAlias asks whether the service has alias (200: it created it).
func (c *Client) QueryAlias(ctx context.Context, reg *Registration, alias string) (bool, error) {
	_, err := c.do(ctx, reg, http.MethodGet, "/_matrix/app/v1/rooms/"+url.PathEscape(alias), nil)
	return answered(err)
}

func answered(err error) (bool, error) {
	if err == nil {
		return true, nil
	}
	if se, ok := err.(*StatusError); ok && se.Status == http.StatusNotFound {
		return false, nil
	}
	return false, err
}

// Ping calls the service's /_matrix/app/v1/ping (spec v1.7).
func (c *Client) Ping(ctx context.Context, reg *Registration, txnID string) error {
	body := map[string]any{}
	if txnID != "" {
		body["transaction_id"] = txnID
	}
	_, err := c.do(ctx, reg, http.MethodPost, "/_matrix/app/v1/ping", body)
	return err
}
