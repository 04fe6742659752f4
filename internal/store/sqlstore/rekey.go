package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mcpgate/mcpgate/internal/store"
	"github.com/mcpgate/mcpgate/internal/vault"
)

// sealedColumn is one column holding vault ciphertexts, and how to name its record (the AAD) from
// the row's key columns.
type sealedColumn struct {
	table  string
	keys   []string // key columns, read as bytes
	column string
	record func(keys [][]byte) string
	// cursor is the unique column Rekey pages by (and updates by); "" means the surrogate integer id.
	cursor string
}

func (sc sealedColumn) cursorColumn() string {
	if sc.cursor == "" {
		return "id"
	}
	return sc.cursor
}

var sealedColumns = []sealedColumn{
	{"connections", []string{"upstream_id", "mode", "subject"}, "access_token", func(k [][]byte) string {
		return connRecord(store.ConnectionKey{UpstreamID: string(k[0]), Mode: store.Mode(k[1]), Subject: string(k[2])}, "access")
	}, ""},
	{"connections", []string{"upstream_id", "mode", "subject"}, "refresh_token", func(k [][]byte) string {
		return connRecord(store.ConnectionKey{UpstreamID: string(k[0]), Mode: store.Mode(k[1]), Subject: string(k[2])}, "refresh")
	}, ""},
	{"client_registrations", []string{"issuer", "upstream_id", "redirect_uri"}, "client_secret", func(k [][]byte) string {
		return regRecord(store.ClientRegistrationKey{Issuer: string(k[0]), UpstreamID: string(k[1]), RedirectURI: string(k[2])})
	}, ""},
	{"pending_authorizations", []string{"state_hash"}, "verifier", func(k [][]byte) string {
		return pendingRecord(k[0])
	}, ""},
	{"signin_requests", []string{"hash", "kind"}, "payload", func(k [][]byte) string {
		return signinRecord(k[0], string(k[1]))
	}, "hash"},
	{"oauth_grants", []string{"id"}, "id_token", func(k [][]byte) string {
		return grantRecord(string(k[0]))
	}, "id"},
}

// Rekey implements store.Rekeyer. Each column is walked in the order of a unique cursor column (the
// table's surrogate integer id, or its primary key: keyset pagination, so unreadable rows are passed
// over, not re-read forever) and each value is swapped with `UPDATE … WHERE <cursor> = ? AND col =
// <old ciphertext>`, which neither bumps the row version nor overwrites a value a concurrent writer
// just changed.
func (db *DB) Rekey(ctx context.Context, o store.RekeyOptions) (store.RekeyProgress, error) {
	if o.BatchSize <= 0 {
		o.BatchSize = 200
	}
	var p store.RekeyProgress
	prefix := db.ring.CurrentPrefix()
	for _, sc := range sealedColumns {
		p.Table = sc.table + "." + sc.column
		cur := sc.cursorColumn()
		var after any // the cursor of the last row seen; nil before the first batch
		for {
			// The prefix length is an int we control; the prefix itself is bound.
			where, args := "", []any{prefix}
			if after != nil {
				where, args = cur+" > ? AND ", []any{after, prefix}
			}
			q := fmt.Sprintf(`SELECT %s, %s, %s FROM %s WHERE %s%s <> '' AND substr(%s, 1, %d) <> ? ORDER BY %s LIMIT %d`,
				cur, strings.Join(sc.keys, ", "), sc.column, sc.table, where, sc.column, sc.column, len(prefix), cur, o.BatchSize)
			rows, err := db.query(ctx, q, args...)
			if err != nil {
				return p, fmt.Errorf("rekeying %s: %w", p.Table, err)
			}
			type item struct {
				id     any
				record string
				old    string
			}
			var batch []item
			for rows.Next() {
				var it item
				keys := make([][]byte, len(sc.keys))
				dest := []any{&it.id}
				for i := range keys {
					dest = append(dest, &keys[i])
				}
				dest = append(dest, &it.old)
				if err := rows.Scan(dest...); err != nil {
					rows.Close()
					return p, fmt.Errorf("rekeying %s: %w", p.Table, err)
				}
				it.record = sc.record(keys)
				batch = append(batch, it)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return p, fmt.Errorf("rekeying %s: %w", p.Table, err)
			}
			if len(batch) == 0 {
				break
			}
			for _, it := range batch {
				after = it.id
				p.Scanned++
				pt, err := db.ring.Open(it.old, it.record)
				if errors.Is(err, vault.ErrUnknownKey) || errors.Is(err, vault.ErrDecrypt) || errors.Is(err, vault.ErrMalformed) {
					p.Unreadable++
					continue
				}
				if err != nil {
					return p, err
				}
				ct, err := db.ring.Seal(pt, it.record)
				if err != nil {
					return p, err
				}
				n, err := db.exec(ctx, fmt.Sprintf(`UPDATE %s SET %s = ? WHERE %s = ? AND %s = ?`, sc.table, sc.column, cur, sc.column),
					ct, it.id, it.old)
				if err != nil {
					return p, fmt.Errorf("rekeying %s: %w", p.Table, err)
				}
				if n == 0 {
					p.Skipped++
				} else {
					p.Rekeyed++
				}
			}
			if o.Progress != nil {
				o.Progress(p)
			}
			if o.AfterBatch != nil {
				if err := o.AfterBatch(p); err != nil {
					return p, err
				}
			}
		}
	}
	p.Table = ""
	return p, nil
}

// SealedKeyIDs implements store.Rekeyer.
func (db *DB) SealedKeyIDs(ctx context.Context) (map[string]int, error) {
	counts := map[string]int{}
	for _, sc := range sealedColumns {
		rows, err := db.read.QueryContext(ctx, fmt.Sprintf(`SELECT %s FROM %s WHERE %s <> ''`, sc.column, sc.table, sc.column))
		if err != nil {
			return nil, fmt.Errorf("counting sealed values: %w", err)
		}
		for rows.Next() {
			var ct string
			if err := rows.Scan(&ct); err != nil {
				rows.Close()
				return nil, fmt.Errorf("counting sealed values: %w", err)
			}
			kid, err := vault.KeyID(ct)
			if err != nil {
				kid = "(malformed)"
			}
			counts[kid]++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("counting sealed values: %w", err)
		}
	}
	return counts, nil
}
