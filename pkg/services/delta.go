package services

// Delta is a change to one source's services, for sources that follow
// their state as it changes instead of reading it whole each time. Full
// replaces the source's services with Services; otherwise Services are
// added or replace the service with the same key, and the services with
// the keys in Removed are gone.
type Delta struct {
	Full     bool
	Services []Service
	Removed  []Key
}
