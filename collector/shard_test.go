package collector

import (
	"fmt"
	"strings"
	"testing"
)

func TestShardAssignmentStable(t *testing.T) {
	// Pinned, from an independent FNV-1a implementation: a change here would
	// move pipelines between running replicas.
	want := map[string]int{
		"1/2": 0, "1/3": 1, "1/5": 4, "42/2": 1, "42/3": 2, "42/5": 1,
		"1001/2": 1, "1001/3": 0, "1001/5": 2, "123456/2": 0, "123456/3": 0, "123456/5": 4,
		"2813489/2": 0, "2813489/3": 0, "2813489/5": 0,
		"9007199254740993/2": 1, "9007199254740993/3": 1, "9007199254740993/5": 0,
	}
	for _, id := range []int64{1, 42, 1001, 123456, 2813489, 9007199254740993} {
		for _, total := range []int{2, 3, 5} {
			key := fmt.Sprintf("%d/%d", id, total)
			if got := ShardOf(id, total); got != want[key] {
				t.Errorf("ShardOf(%s) = %d, pinned %d", key, got, want[key])
			}
		}
	}
}

// TestShardsPartition: every pipeline belongs to exactly one shard, for
// every shard count, and the shares are even enough to be worth having.
func TestShardsPartition(t *testing.T) {
	const pipelines = 10000
	for _, total := range []int{1, 2, 3, 4, 7, 16} {
		counts := make([]int, total)
		for id := int64(1); id <= pipelines; id++ {
			owners := 0
			for index := 0; index < total; index++ {
				if (Shard{Index: index, Total: total}).Owns(id) {
					owners++
					counts[index]++
				}
			}
			if owners != 1 {
				t.Fatalf("total %d: pipeline %d has %d owners", total, id, owners)
			}
		}
		for index, n := range counts {
			if share := float64(n) / pipelines * float64(total); share < 0.8 || share > 1.2 {
				t.Errorf("total %d: shard %d has %d pipelines (%.2f of an even share)", total, index, n, share)
			}
		}
	}
}

func TestShardValidate(t *testing.T) {
	for _, s := range []Shard{{0, 0}, {-1, 2}, {2, 2}} {
		if s.Validate() == nil {
			t.Errorf("%+v should be refused", s)
		}
	}
	if err := (Shard{1, 2}).Validate(); err != nil {
		t.Error(err)
	}
}

// TestShardedCollector exports only its share, and a reload keeps it so.
func TestShardedCollector(t *testing.T) {
	var pipelines strings.Builder
	for id := 1; id <= 20; id++ {
		fmt.Fprintf(&pipelines, "  - id: %d\n    name: p%d\n", id, id)
	}
	seen := map[string]int{}
	for index := 0; index < 3; index++ {
		e := newTestEnv(t, "  - id: 1\n")
		e.coll.opts.Shard = Shard{Index: index, Total: 3}
		for id := int64(1); id <= 20; id++ {
			e.pinFixture(id, "success.json")
		}
		e.apply(pipelines.String(), "org-1")
		out := exposition(t, e.coll)
		for id := 1; id <= 20; id++ {
			has := strings.Contains(out, fmt.Sprintf(`yunxiao_pipeline_up{pipeline_id="%d",`, id))
			if has != (ShardOf(int64(id), 3) == index) {
				t.Errorf("shard %d: pipeline %d exported=%v", index, id, has)
			}
			if has {
				seen[fmt.Sprint(id)]++
			}
		}
	}
	if len(seen) != 20 {
		t.Errorf("the three shards together export %d of 20 pipelines", len(seen))
	}
}
