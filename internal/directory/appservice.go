package directory

import (
	"context"
	"strings"

	"github.com/myelin-chat/myelin/internal/mxerr"
	"github.com/myelin-chat/myelin/internal/store"
)

// directoryScope is which rooms a /publicRooms request lists, as
// Synapse's room list servlet decides: include_all_networks lists the
// server's own directory and every application service network's;
// third_party_instance_id ("{appservice id}|{network id}", the
// instance_id that /thirdparty/protocols gives each instance) lists that
// network's alone; neither lists the server's own directory.
func directoryScope(req PublicRoomsQuery) (store.DirectoryScope, error) {
	if req.IncludeAllNetworks {
		return store.DirectoryScope{AllNetworks: true}, nil
	}
	if req.ThirdPartyInstanceID == "" {
		return store.DirectoryScope{}, nil
	}
	asID, networkID, ok := strings.Cut(req.ThirdPartyInstanceID, "|")
	if !ok || asID == "" || strings.Contains(networkID, "|") {
		return store.DirectoryScope{}, mxerr.InvalidParam("Invalid third_party_instance_id")
	}
	return store.DirectoryScope{ASID: asID, NetworkID: networkID}, nil
}

// SetAppServiceListed publishes a room in the directory of an
// application service's network (PUT
// /directory/list/appservice/{networkId}/{roomId}), or withdraws it;
// M_NOT_FOUND for a room the server does not know.
func (s *Service) SetAppServiceListed(ctx context.Context, asID, networkID, roomID string, listed bool) error {
	if _, err := s.Published(ctx, roomID); err != nil {
		return err
	}
	return s.store.SetAppServiceRoomListed(ctx, asID, networkID, roomID, listed)
}
