package marathon

import "container/list"

// lru is a bounded map that forgets its least recently used entry first.
// It is not safe for concurrent use; its owners lock around it.
type lru[K comparable, V any] struct {
	max int
	m   map[K]*list.Element
	l   list.List // front: most recently used
}

type lruEntry[K comparable, V any] struct {
	k K
	v V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	if max < 1 {
		max = 1
	}
	return &lru[K, V]{max: max, m: make(map[K]*list.Element)}
}

// get returns k's value and marks it used.
func (c *lru[K, V]) get(k K) (V, bool) {
	e, ok := c.m[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.l.MoveToFront(e)
	return e.Value.(*lruEntry[K, V]).v, true
}

// put sets k's value, forgetting the least recently used entry when full.
func (c *lru[K, V]) put(k K, v V) {
	if e, ok := c.m[k]; ok {
		e.Value.(*lruEntry[K, V]).v = v
		c.l.MoveToFront(e)
		return
	}
	if len(c.m) >= c.max {
		old := c.l.Back()
		c.l.Remove(old)
		delete(c.m, old.Value.(*lruEntry[K, V]).k)
	}
	c.m[k] = c.l.PushFront(&lruEntry[K, V]{k: k, v: v})
}

func (c *lru[K, V]) remove(k K) {
	if e, ok := c.m[k]; ok {
		c.l.Remove(e)
		delete(c.m, k)
	}
}

func (c *lru[K, V]) len() int { return len(c.m) }
