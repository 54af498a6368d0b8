package snapshot

import (
	"hash/maphash"
	"iter"
	"maps"
)

// cowShardTarget is the number of entries per shard a cowMap aims at: an
// edit copies every shard it touches, so one change costs about this many
// entry copies (≈10 µs), whatever the size of the map.
const cowShardTarget = 512

// cowMap is an immutable map from string to V, split into a power-of-two
// number of shards (plain Go maps) by a hash of the key. Lookups cost one
// hash and one map lookup; an edit (cowEdit) copies only the shards it
// touches and shares the others with the map it came from, so deriving a
// changed map costs O(changes × shard size), not O(entries). The zero value
// is an empty map. A cowMap is never modified once built.
type cowMap[V any] struct {
	seed   maphash.Seed
	shards []map[string]V // len is a power of two; nil entries are empty shards
	n      int
}

// newCowMap returns an empty map sized for about n entries.
func newCowMap[V any](n int) cowMap[V] {
	return cowMap[V]{seed: maphash.MakeSeed(), shards: make([]map[string]V, shardsFor(n))}
}

// shardsFor returns the shard count for n entries: a power of two with
// about cowShardTarget entries each, at least 1.
func shardsFor(n int) int {
	s := 1
	for s*cowShardTarget < n && s < 1<<16 {
		s <<= 1
	}
	return s
}

func (m *cowMap[V]) shard(k string) int {
	return int(maphash.String(m.seed, k) & uint64(len(m.shards)-1))
}

// get returns the value of k.
func (m *cowMap[V]) get(k string) (V, bool) {
	if len(m.shards) == 0 {
		var zero V
		return zero, false
	}
	v, ok := m.shards[m.shard(k)][k]
	return v, ok
}

// len returns the number of entries.
func (m *cowMap[V]) len() int { return m.n }

// all yields every entry, in no particular order.
func (m *cowMap[V]) all() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) {
		for _, s := range m.shards {
			for k, v := range s {
				if !yield(k, v) {
					return
				}
			}
		}
	}
}

// put sets k while m is being built (by New); it must not be called on a
// map that has been shared.
func (m *cowMap[V]) put(k string, v V) bool {
	i := m.shard(k)
	s := m.shards[i]
	if s == nil {
		s = make(map[string]V)
		m.shards[i] = s
	}
	if _, dup := s[k]; dup {
		return false
	}
	s[k] = v
	m.n++
	return true
}

// cowEdit derives a changed map from a base without modifying it.
type cowEdit[V any] struct {
	m      cowMap[V]
	copied map[int]bool // shards already copied from the base
}

// edit starts an edit of m.
func (m *cowMap[V]) edit() *cowEdit[V] {
	if len(m.shards) == 0 {
		return &cowEdit[V]{m: newCowMap[V](0), copied: map[int]bool{}}
	}
	e := &cowEdit[V]{m: *m, copied: map[int]bool{}}
	e.m.shards = append([]map[string]V(nil), m.shards...) // shard pointers only
	return e
}

// own returns shard i, copied from the base on first use.
func (e *cowEdit[V]) own(i int) map[string]V {
	if !e.copied[i] {
		e.copied[i] = true
		s := maps.Clone(e.m.shards[i]) // copies the table without rehashing
		if s == nil {
			s = make(map[string]V)
		}
		e.m.shards[i] = s
	}
	return e.m.shards[i]
}

func (e *cowEdit[V]) get(k string) (V, bool) { return e.m.get(k) }

func (e *cowEdit[V]) set(k string, v V) {
	s := e.own(e.m.shard(k))
	if _, ok := s[k]; !ok {
		e.m.n++
	}
	s[k] = v
}

func (e *cowEdit[V]) del(k string) {
	i := e.m.shard(k)
	if _, ok := e.m.shards[i][k]; !ok {
		return
	}
	delete(e.own(i), k)
	e.m.n--
}

// done returns the edited map. When it has outgrown its shard count four
// times over it is re-sharded (O(entries), amortised over the growth).
func (e *cowEdit[V]) done() cowMap[V] {
	if want := shardsFor(e.m.n); want >= 4*len(e.m.shards) {
		out := newCowMap[V](e.m.n)
		for k, v := range e.m.all() {
			out.put(k, v)
		}
		return out
	}
	return e.m
}
