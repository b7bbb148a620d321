package haproxy

import "context"

// Check runs `bin -c -f cfgPath` and returns nil when HAProxy accepts the
// file; otherwise the error carries HAProxy's own message.
func Check(ctx context.Context, bin, cfgPath string) error {
	return check(ctx, bin, cfgPath)
}
