package store

import "context"

// RekeyOptions tune Rekey.
type RekeyOptions struct {
	// BatchSize is how many rows each batch reads (default 200).
	BatchSize int
	// Progress, when set, is called after every batch.
	Progress func(RekeyProgress)
	// AfterBatch, when set, runs after every batch; an error aborts the rekey (tests inject crashes
	// with it; the work done so far stays done).
	AfterBatch func(RekeyProgress) error
}

// RekeyProgress counts what Rekey did so far.
type RekeyProgress struct {
	Table      string // the table of the batch just finished
	Scanned    int    // sealed values examined under an older key
	Rekeyed    int    // values re-sealed with the newest key
	Skipped    int    // values changed concurrently (already re-sealed by a writer)
	Unreadable int    // values under a key no longer in the ring (their records must be re-created)
}

// Rekeyer re-seals stored secrets with the newest key of the ring.
type Rekeyer interface {
	// Rekey re-seals, in batches, every secret not sealed with the ring's newest key. Each value is
	// swapped only if it is unchanged since it was read (compare-and-swap on the ciphertext, so a
	// concurrent refresh is never clobbered). It is safe to run while serving and to rerun after a
	// crash: rows already re-sealed are not selected again.
	Rekey(ctx context.Context, o RekeyOptions) (RekeyProgress, error)
	// SealedKeyIDs counts stored secrets by the key id that sealed them.
	SealedKeyIDs(ctx context.Context) (map[string]int, error)
}
