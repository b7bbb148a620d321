package nginx

import "context"

// Check runs `bin -t -p prefix -c cfgPath` and returns nil when nginx
// accepts the file; otherwise the error carries nginx's own message.
func Check(ctx context.Context, bin, prefix, cfgPath string) error {
	return check(ctx, bin, prefix, cfgPath)
}
