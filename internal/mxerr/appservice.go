package mxerr

import "net/http"

// The errors of POST /_matrix/client/v1/appservice/{appserviceId}/ping
// (spec v1.7).

// URLNotSet: the service's registration has no url.
func URLNotSet() *Error {
	return newf(http.StatusBadRequest, "M_URL_NOT_SET", "Application service URL is not set")
}

// BadStatus: the service answered the ping with another status than 200.
func BadStatus(status int, body string) *Error {
	return newf(http.StatusBadGateway, "M_BAD_STATUS", "Ping returned status %d", status).With("status", status).With("body", body)
}

// ConnectionFailed: the service could not be reached.
func ConnectionFailed() *Error {
	return newf(http.StatusBadGateway, "M_CONNECTION_FAILED", "Ping failed to connect to the application service")
}

// ConnectionTimeout: the service did not answer in time.
func ConnectionTimeout() *Error {
	return newf(http.StatusGatewayTimeout, "M_CONNECTION_TIMEOUT", "Ping timed out")
}
