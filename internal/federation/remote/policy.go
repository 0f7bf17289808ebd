package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/matrix-org/gomatrix"
	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/fclient"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/signing"
)

// PolicyKeyID is the key ID of a policy server's signature: always
// ed25519:policy_server (server-server spec "Validating Policy Server
// signatures").
const PolicyKeyID = "ed25519:policy_server"

// maxPolicyErrorBytes bounds the error message of a refusal that is
// handed on to a client.
const maxPolicyErrorBytes = 1024

// PolicyClient asks rooms' policy servers to sign events (POST
// /_matrix/policy/v1/sign, MSC4284, spec v1.18): the room engine's
// rooms.PolicySigner. Requests go through the federation client, so
// they are signed (X-Matrix) and dial only what the outbound policy
// allows.
type PolicyClient struct {
	client     fclient.FederationClient
	serverName string
	key        signing.Key
	log        *slog.Logger
}

// NewPolicyClient makes the policy-server client over the federation
// client.
func NewPolicyClient(client fclient.FederationClient, serverName string, key signing.Key, log *slog.Logger) *PolicyClient {
	if log == nil {
		log = slog.Default()
	}
	return &PolicyClient{client: client, serverName: serverName, key: key, log: log}
}

// ErrPolicyUnavailable wraps every failure to get an answer from a
// policy server (unreachable, timed out, 5xx, rate limited): what
// federation.policy_server_fail_open decides about.
var ErrPolicyUnavailable = errors.New("policy server unavailable")

// SignEvent asks server to sign a PDU and returns its signature
// (unpadded base64). A *mxerr.Error is the policy server refusing (its
// own error, to be given to the client verbatim); an error wrapping
// ErrPolicyUnavailable means no answer was had.
func (c *PolicyClient) SignEvent(ctx context.Context, server string, pdu json.RawMessage) (string, error) {
	req := fclient.NewFederationRequest(http.MethodPost, spec.ServerName(c.serverName), spec.ServerName(server), "/_matrix/policy/v1/sign")
	if err := req.SetContent(pdu); err != nil {
		return "", err
	}
	if err := req.Sign(spec.ServerName(c.serverName), gomatrixserverlib.KeyID(c.key.ID), c.key.Private); err != nil {
		return "", err
	}
	hreq, err := req.HTTPRequest()
	if err != nil {
		return "", err
	}
	var body json.RawMessage
	err = c.client.DoRequestAndParseResponse(ctx, hreq, &body)
	status := http.StatusOK
	if err != nil {
		var he gomatrix.HTTPError
		if !errors.As(err, &he) {
			c.log.Warn("policy server unreachable", "server", server, "err", err)
			return "", fmt.Errorf("%w: %s: %v", ErrPolicyUnavailable, server, err)
		}
		status, body = he.Code, he.Contents
	}
	sig, err := parsePolicyAnswer(server, status, body)
	if err != nil && errors.Is(err, ErrPolicyUnavailable) {
		c.log.Warn("policy server unavailable", "server", server, "status", status)
	}
	return sig, err
}

// parsePolicyAnswer reads a policy server's answer to /sign: on 200 the
// signature signatures[server][ed25519:policy_server]; on a 4xx its
// Matrix error, as the refusal a client is given verbatim (the spec's
// "If the Policy Server returned an error, that error SHOULD be provided
// to the client verbatim"), except that statuses and errcodes meaning
// something about the client's own session (401, token errors) become
// 403 M_FORBIDDEN; 408, 429 and 5xx are unavailability.
func parsePolicyAnswer(server string, status int, body []byte) (string, error) {
	switch {
	case status == http.StatusOK:
		var answer map[string]map[string]json.RawMessage
		if err := json.Unmarshal(body, &answer); err == nil {
			var sig string
			if raw, ok := answer[server][PolicyKeyID]; ok && json.Unmarshal(raw, &sig) == nil && sig != "" {
				return sig, nil
			}
		}
		// Synapse treats a 200 without the signature as a refusal.
		return "", mxerr.Forbidden("This event has been rejected as probable spam by the policy server")
	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500 || status < 400:
		return "", fmt.Errorf("%w: %s answered %d", ErrPolicyUnavailable, server, status)
	}
	var e struct {
		Code    string `json:"errcode"`
		Message string `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	refusal := &mxerr.Error{Status: status, Code: e.Code, Message: e.Message}
	switch status {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound:
	default:
		refusal.Status = http.StatusForbidden
	}
	switch refusal.Code {
	case "", "M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_USER_LOCKED", "M_USER_SUSPENDED", "M_USER_DEACTIVATED":
		refusal.Code = "M_FORBIDDEN"
	}
	if refusal.Message == "" {
		refusal.Message = "The policy server refused to sign the event"
	}
	if len(refusal.Message) > maxPolicyErrorBytes {
		refusal.Message = strings.ToValidUTF8(refusal.Message[:maxPolicyErrorBytes], "")
	}
	return "", refusal
}
