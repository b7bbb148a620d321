package pen

// Parse checks a pen config with our own parser: pen has no check mode and
// silently ignores what it does not understand, so this is the only check a
// rendered (or template-overridden) file gets before pen reads it.
func Parse(data []byte) error { return parse(data) }
