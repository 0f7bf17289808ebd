package keys

// KeysUploaded is published once a local device's one-time or fallback
// keys were stored, so that what reports key counts outside /sync (an
// application service's MSC3202 transactions) reads them after the
// upload: Changed, published for the device keys, comes before the
// one-time keys are stored.
type KeysUploaded struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
}

// TopicKeysUploaded is KeysUploaded's topic.
const TopicKeysUploaded = "keys.uploaded"

// Topic implements bus.Change.
func (KeysUploaded) Topic() string { return TopicKeysUploaded }
