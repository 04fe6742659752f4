package store

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// APIKeyPrefix starts every API key mcpgate issues, so secret scanners can recognise them.
const APIKeyPrefix = "mcpg_"

// NewAPIKey generates a key id and an API key (letters, digits, _ and -; 48 characters) and returns
// them with the hash to store. The key is shown once and never stored.
func NewAPIKey() (id, key string, hash []byte, err error) {
	var idb [8]byte
	var secret [32]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return "", "", nil, fmt.Errorf("generating api key: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", nil, fmt.Errorf("generating api key: %w", err)
	}
	id = "key_" + hex.EncodeToString(idb[:])
	key = APIKeyPrefix + base64.RawURLEncoding.EncodeToString(secret[:])
	return id, key, HashAPIKey(key), nil
}
