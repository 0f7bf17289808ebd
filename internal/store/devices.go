package store

import (
	"context"
	"database/sql"

	"github.com/myelin-chat/myelin/internal/ident"
)

// Device is one login session's device.
type Device struct {
	Localpart     string
	DeviceID      string
	DisplayName   *string
	CreatedTS     int64
	LastSeenTS    int64
	LastSeenIP    string
	LastSeenAgent string
}

const deviceColumns = `localpart, device_id, display_name, created_ts, last_seen_ts, last_seen_ip, last_seen_agent`

func scanDevice(scan func(...any) error) (Device, error) {
	var d Device
	var name sql.NullString
	err := scan(&d.Localpart, &d.DeviceID, &name, &d.CreatedTS, &d.LastSeenTS, &d.LastSeenIP, &d.LastSeenAgent)
	if name.Valid {
		d.DisplayName = &name.String
	}
	return d, err
}

// GetDevice loads one device.
func (db *DB) GetDevice(ctx context.Context, localpart, deviceID string) (Device, error) {
	var out Device
	rows, err := db.r().query(ctx, `SELECT `+deviceColumns+` FROM devices WHERE localpart = $1 AND device_id = $2`, localpart, deviceID)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return out, err
		}
		return out, ErrNotFound
	}
	return scanDevice(rows.Scan)
}

// ListDevices returns a user's devices in device ID order.
func (db *DB) ListDevices(ctx context.Context, localpart string) ([]Device, error) {
	return collect(ctx, db.r(), scanDevice, `SELECT `+deviceColumns+` FROM devices WHERE localpart = $1 ORDER BY device_id`, localpart)
}

// SetDeviceDisplayName renames a device; ErrNotFound if it does not exist.
func (db *DB) SetDeviceDisplayName(ctx context.Context, localpart, deviceID string, name *string) error {
	return affected(db.w().exec(ctx, `UPDATE devices SET display_name = $3 WHERE localpart = $1 AND device_id = $2`, localpart, deviceID, ident.FreeTextPtr(name)))
}

// DeleteDevices removes devices and, through the foreign keys, their tokens.
func (db *DB) DeleteDevices(ctx context.Context, localpart string, deviceIDs []string) error {
	return db.tx(ctx, func(c conn) error {
		for _, id := range deviceIDs {
			if _, err := c.exec(ctx, `DELETE FROM devices WHERE localpart = $1 AND device_id = $2`, localpart, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteOtherDevices removes every device of a user except keep (which
// may be empty, removing all), returning the IDs removed.
func (db *DB) DeleteOtherDevices(ctx context.Context, localpart, keep string) ([]string, error) {
	var ids []string
	err := db.tx(ctx, func(c conn) error {
		rows, err := c.query(ctx, `SELECT device_id FROM devices WHERE localpart = $1 AND device_id <> $2`, localpart, keep)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		_, err = c.exec(ctx, `DELETE FROM devices WHERE localpart = $1 AND device_id <> $2`, localpart, keep)
		return err
	})
	return ids, err
}

// TouchDevice records when and from where a device was last seen.
func (db *DB) TouchDevice(ctx context.Context, localpart, deviceID string, ts int64, ip, agent string) error {
	_, err := db.w().exec(ctx, `UPDATE devices SET last_seen_ts = $3, last_seen_ip = $4, last_seen_agent = $5
		WHERE localpart = $1 AND device_id = $2`, localpart, deviceID, ts, ip, agent)
	return err
}
