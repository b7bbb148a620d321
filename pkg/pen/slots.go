package pen

import "github.com/meltwater/proxymatic/pkg/services"

// SlotsFile is where the slot assignments are kept in the run dir, so a
// restarted agent gives every server the slot it had.
func SlotsFile(runDir string) string { return runDir + "/pen-slots.json" }

// Slots remembers which slot each server of each pen service holds. A
// server keeps its slot while it is listed; a freed slot is reused by the
// next new server. Not safe for concurrent use: the render loop owns it.
type Slots struct {
	size  int
	byKey map[services.Key]*table
	free  []string // each slot's free line, rendered once
}

// NewSlots returns empty assignments with size slots per service.
func NewSlots(size int) *Slots { return newSlots(size) }

// LoadSlots reads assignments saved by Save. A missing file gives empty
// assignments; an unreadable or corrupt one is an error (the caller may
// start empty: only stability across restarts is lost).
func LoadSlots(path string, size int) (*Slots, error) { return loadSlots(path, size) }

// Save writes the assignments atomically.
func (s *Slots) Save(path string) error { return s.save(path) }

// Retain forgets the services not in keep, so their slots do not grow the
// file forever.
func (s *Slots) Retain(keep []services.Key) { s.retain(keep) }

// Dropped reports how many servers of the service did not fit in the slots
// at the last Render.
func (s *Slots) Dropped(k services.Key) int { return s.dropped(k) }
