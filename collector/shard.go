package collector

import (
	"fmt"
	"hash/fnv"
	"strconv"
)

// Shard is this replica's share of the pipelines when several replicas
// split them: pipeline id p belongs to shard ShardOf(p, Total).
type Shard struct {
	Index int // 0 ≤ Index < Total
	Total int // 1 means no sharding
}

// Validate checks the shard is well formed.
func (s Shard) Validate() error {
	if s.Total < 1 {
		return fmt.Errorf("--shard.total must be at least 1, not %d", s.Total)
	}
	if s.Index < 0 || s.Index >= s.Total {
		return fmt.Errorf("--shard.index must be in [0, %d), not %d", s.Total, s.Index)
	}
	return nil
}

// Owns reports whether pipeline id belongs to this shard.
func (s Shard) Owns(id int64) bool {
	return s.Total <= 1 || ShardOf(id, s.Total) == s.Index
}

// ShardOf is the shard of pipeline id among total: FNV-1a of its decimal
// id, modulo total. It depends on nothing but the id, so every replica and
// every version agrees, and a config reload never moves a pipeline.
func ShardOf(id int64, total int) int {
	if total <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(strconv.FormatInt(id, 10)))
	return int(h.Sum32() % uint32(total))
}
