package clientapi

import (
	"crypto/rand"
	"encoding/base64"
)

// shadowBanned answers a shadow-banned user's send as a success with a
// made-up event ID, as Synapse does (its admin API's shadow_ban): the
// event is neither stored nor delivered, and the sender cannot tell.
func shadowBanned() map[string]string {
	return map[string]string{"event_id": "$" + shadowBannedID()}
}

// shadowBannedID is a random opaque ID for made-up answers.
func shadowBannedID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
