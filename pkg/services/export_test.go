package services

// ParseCanonical exposes the fast path to the external tests.
var ParseCanonical = parseCanonical
