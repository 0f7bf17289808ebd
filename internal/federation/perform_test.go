package federation

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/myelin-chat/myelin/internal/outbound"
)

// TestPDUReason: the origin of a refused PDU learns why, but not the
// dial error of a connection this server made on its account (what a
// name it chose resolves to here, whether that address answers).
func TestPDUReason(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 5), Port: 8448}, Err: errors.New("connection refused")}
	for _, err := range []error{
		fmt.Errorf("signature check failed: %w", dial),
		fmt.Errorf("fetching keys: %w", &url.Error{Op: "Get", URL: "matrix://internal.example/_matrix/key/v2/server", Err: dial}),
		fmt.Errorf("signature check failed: %w", fmt.Errorf("dialling 10.0.0.5:8448: %w", outbound.ErrRefused)),
		fmt.Errorf("lookup: %w", &net.DNSError{Err: "no such host", Name: "internal.example", Server: "10.0.0.53:53"}),
	} {
		if got := pduReason(err); strings.Contains(got, "10.0.0") || strings.Contains(got, "internal.example") {
			t.Errorf("pduReason(%v) = %q", err, got)
		}
	}
	reason := errors.New("room !r:example.org is not known to this server")
	if got := pduReason(reason); got != reason.Error() {
		t.Errorf("pduReason(%v) = %q, want the reason itself", reason, got)
	}
}
