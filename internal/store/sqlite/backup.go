package sqlite

import (
	"context"
	"fmt"
	"os"

	"github.com/mcpgate/mcpgate/internal/store/sqlstore"
)

// Backup writes a consistent copy of the database to path (VACUUM INTO), online: it runs on the
// store's one write connection, so it sees every committed write and serving goes on (writes wait
// for the copy, reads do not). path must not exist; the copy is a complete SQLite database
// (mode 0600) that `serve --database-url sqlite:<path>` opens as is.
func Backup(ctx context.Context, db *sqlstore.DB, path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("backing up to %s: the file exists; choose a new name", path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("backing up to %s: %w", path, err)
	}
	_ = f.Close()
	_ = os.Remove(path) // VACUUM INTO wants to create it; the probe checked we may
	if _, err := db.Writer().ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("backing up to %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}
