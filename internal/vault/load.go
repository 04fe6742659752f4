package vault

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DevKeyFile is the file under the data dir that holds the generated development key ring.
const DevKeyFile = "encryption-keys"

// LoadOptions say where a key ring comes from.
type LoadOptions struct {
	// Keys is the value of MCPGATE_ENCRYPTION_KEYS; when set it is the ring and nothing else is read.
	Keys string
	// DataDir holds the generated development key when Keys is empty.
	DataDir string
	// Production refuses to run without Keys (MCPGATE_ENV=production).
	Production bool
}

// ErrNoKeyInProduction is returned by Load in production when no key ring is configured.
var ErrNoKeyInProduction = errors.New("MCPGATE_ENCRYPTION_KEYS is not set and MCPGATE_ENV=production: " +
	"create a key with `mcpgate keys generate-encryption-key`, store it in your secret manager, and set " +
	"MCPGATE_ENCRYPTION_KEYS=<kid>:<base64 key> (comma-separate older keys after it when rotating)")

// Load returns the key ring described by o. Without configured keys, in development, it reads or
// creates a ring in <DataDir>/encryption-keys (mode 0600) and returns a warning the caller must log on
// every start; in production it returns ErrNoKeyInProduction.
func Load(o LoadOptions) (ring *Ring, warning string, err error) {
	if strings.TrimSpace(o.Keys) != "" {
		r, err := ParseRing(o.Keys)
		if err != nil {
			return nil, "", fmt.Errorf("MCPGATE_ENCRYPTION_KEYS: %w", err)
		}
		return r, "", nil
	}
	if o.Production {
		return nil, "", ErrNoKeyInProduction
	}
	path := filepath.Join(o.DataDir, DevKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		line, gerr := GenerateKey("", func() string { return time.Now().UTC().Format("20060102") })
		if gerr != nil {
			return nil, "", gerr
		}
		if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
			return nil, "", fmt.Errorf("creating data dir: %w", err)
		}
		// Write a temp file and hard-link it into place: the key file appears complete or not at all,
		// and of two processes starting together exactly one key wins.
		tmp, err := os.CreateTemp(o.DataDir, ".encryption-keys-*")
		if err != nil {
			return nil, "", fmt.Errorf("writing development key: %w", err)
		}
		defer os.Remove(tmp.Name())
		if err := tmp.Chmod(0o600); err != nil {
			_ = tmp.Close()
			return nil, "", fmt.Errorf("writing development key: %w", err)
		}
		if _, err := tmp.WriteString(line + "\n"); err != nil {
			_ = tmp.Close()
			return nil, "", fmt.Errorf("writing development key: %w", err)
		}
		if err := tmp.Sync(); err != nil {
			_ = tmp.Close()
			return nil, "", fmt.Errorf("writing development key: %w", err)
		}
		if err := tmp.Close(); err != nil {
			return nil, "", fmt.Errorf("writing development key: %w", err)
		}
		if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
			return Load(o) // another process created it first: use theirs
		} else if err != nil {
			return nil, "", fmt.Errorf("writing development key: %w", err)
		}
		b = []byte(line)
	case err != nil:
		return nil, "", fmt.Errorf("reading development key: %w", err)
	}
	r, err := ParseRing(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	warning = fmt.Sprintf("MCPGATE_ENCRYPTION_KEYS is not set: using the development key in %s. "+
		"Anyone who can read that file can decrypt stored tokens, and losing it means every connection must be "+
		"reconnected. For production run `mcpgate keys generate-encryption-key` and set MCPGATE_ENCRYPTION_KEYS.", path)
	return r, warning, nil
}
