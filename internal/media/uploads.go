package media

import (
	"context"
	"errors"

	"github.com/myelin-chat/myelin/internal/store"
)

// UploadStore is the storage Uploads needs.
type UploadStore interface {
	UserUploads(ctx context.Context, origin, uploader, order string, desc bool, from, limit int) ([]store.Media, int64, error)
}

// Uploads is the admin's view of the media local users uploaded
// (Synapse's GET and DELETE /_synapse/admin/v1/users/{userId}/media).
type Uploads struct {
	svc *Service
	db  UploadStore
}

// NewUploads makes the admin's view of local uploads over the
// repository.
func NewUploads(svc *Service, db UploadStore) *Uploads { return &Uploads{svc: svc, db: db} }

// Upload is one uploaded media ID as the admin API lists it.
type Upload struct {
	MediaID, ContentType, Filename string
	Size, CreatedTS                int64
	// LastAccessTS is 0 for media never read; QuarantinedBy is "" for
	// media not quarantined.
	LastAccessTS       int64
	QuarantinedBy      string
	SafeFromQuarantine bool
}

// ValidUploadOrder reports whether uploads sort by order (Synapse's
// order_by values).
func ValidUploadOrder(order string) bool { return store.ValidUploadOrder(order) }

// List is a page of a local user's uploads and how many there are.
func (u *Uploads) List(ctx context.Context, userID, order string, desc bool, from, limit int) ([]Upload, int64, error) {
	if err := u.svc.FlushAccessTimes(ctx); err != nil {
		return nil, 0, err
	}
	rows, total, err := u.db.UserUploads(ctx, u.svc.serverName, userID, order, desc, from, limit)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Upload, len(rows))
	for i, m := range rows {
		out[i] = Upload{MediaID: m.MediaID, ContentType: m.ContentType, Filename: m.Filename, Size: m.Size, CreatedTS: m.CreatedTS,
			LastAccessTS: m.LastAccessTS, QuarantinedBy: m.QuarantinedBy, SafeFromQuarantine: m.SafeFromQuarantine}
	}
	return out, total, nil
}

// Delete removes local media IDs, their thumbnails and the files no
// other media ID shares (files are content-addressed), as the media
// admin API's delete does for one; IDs already gone are skipped.
func (u *Uploads) Delete(ctx context.Context, mediaIDs []string) error {
	for _, id := range mediaIDs {
		hashes, err := u.svc.db.DeleteMediaRows(ctx, store.MediaRef{Origin: u.svc.serverName, MediaID: id})
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return err
		}
		if err := u.svc.dropFiles(ctx, hashes); err != nil {
			return err
		}
	}
	return nil
}
