package inventory

import (
	"context"
	"fmt"
)

// PoolLevel is how many sealed pre-generated keys one EST server-keygen
// pool holds right now.
type PoolLevel struct {
	Label   string `db:"label" json:"label"`
	KeyType string `db:"key_type" json:"key_type"`
	Keys    int    `db:"n" json:"keys"`
}

// ESTPoolLevels returns the level of every EST key pool that holds at
// least one key, ordered by label and key type. The dashboard shows it
// next to CA health; an empty pool is absent here and visible through the
// mica_est_pool_keys gauge of the replica that refills it.
func (s *Store) ESTPoolLevels(ctx context.Context) ([]PoolLevel, error) {
	var out []PoolLevel
	err := s.db.SelectContext(ctx, &out, `SELECT label, key_type, COUNT(*) AS n FROM est_pool_keys
		GROUP BY label, key_type ORDER BY label, key_type`)
	if err != nil {
		return nil, fmt.Errorf("inventory: EST pool levels: %w", err)
	}
	return out, nil
}
