package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNoFile is returned by Storage.Get for a hash it does not hold.
var ErrNoFile = errors.New("media: no such file")

// Storage keeps media bytes by the hex SHA-256 of their content, so that
// the same bytes uploaded twice are stored once. The local filesystem
// implements it; an object store (S3) could too.
type Storage interface {
	// Put stores the bytes read from src under hash; a hash already
	// stored is kept and src is not read.
	Put(ctx context.Context, hash string, src io.Reader) error
	// Get opens the bytes stored under hash, or fails with ErrNoFile.
	Get(ctx context.Context, hash string) (io.ReadCloser, error)
	// Delete forgets the bytes stored under hash (no error if none are).
	Delete(ctx context.Context, hash string) error
}

// FileStorage is Storage in a directory: <dir>/ab/cd/abcd...; two levels
// of fan-out keep directories small.
type FileStorage struct{ dir string }

// NewFileStorage stores files under dir, creating it.
func NewFileStorage(dir string) (*FileStorage, error) {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("media storage: %w", err)
	}
	return &FileStorage{dir: dir}, nil
}

// Path is where the bytes of hash live (tests look at the files).
func (f *FileStorage) Path(hash string) (string, error) {
	if !validHash(hash) {
		return "", fmt.Errorf("media storage: invalid hash %q", hash)
	}
	return filepath.Join(f.dir, hash[0:2], hash[2:4], hash), nil
}

// Put writes to a temporary file and renames it into place, so that a
// reader never sees half a file and a crash leaves only litter in tmp/.
func (f *FileStorage) Put(_ context.Context, hash string, src io.Reader) error {
	path, err := f.Path(hash)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Join(f.dir, "tmp"), "put-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Get opens the file of hash.
func (f *FileStorage) Get(_ context.Context, hash string) (io.ReadCloser, error) {
	path, err := f.Path(hash)
	if err != nil {
		return nil, err
	}
	file, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoFile
	}
	return file, err
}

// Delete removes the file of hash.
func (f *FileStorage) Delete(_ context.Context, hash string) error {
	path, err := f.Path(hash)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// validHash accepts lower-case hex SHA-256 only, so that no hash can name
// a path outside the storage directory.
func validHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
