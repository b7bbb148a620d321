package registrator

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

type v3Session struct {
	client   *clientv3.Client
	endpoint string
	prefix   string // the key prefix with its trailing '/'
}

func (s *Source) openV3(_ context.Context, endpoint string) (session, error) {
	scheme := "http://"
	if s.tls != nil {
		scheme = "https://"
	}
	cfg := clientv3.Config{
		// One endpoint per client: the Source fails over itself, so that
		// failures are counted per endpoint and a dead endpoint is left
		// rather than silently retried.
		Endpoints:   []string{scheme + endpoint},
		DialTimeout: s.opts.RequestTimeout,
		Username:    s.cfg.Username,
		Password:    s.cfg.Password,
		Logger:      zap.NewNop(), // the Source logs what matters, without credentials
	}
	if s.tls != nil {
		cfg.TLS = s.tls.Clone()
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd v3 %s: %w", endpoint, err)
	}
	return &v3Session{client: c, endpoint: endpoint, prefix: s.cfg.Prefix + "/"}, nil
}

func (v *v3Session) close() { v.client.Close() }

func (v *v3Session) list(ctx context.Context) (map[string]string, int64, error) {
	r, err := v.client.Get(ctx, v.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("etcd v3 %s: read %s: %w", v.endpoint, clip(v.prefix), err)
	}
	kv := make(map[string]string, len(r.Kvs))
	for _, e := range r.Kvs {
		kv[string(e.Key)] = string(e.Value)
	}
	return kv, r.Header.Revision, nil
}

func (v *v3Session) watch(ctx context.Context, from int64, emit func([]change) error) error {
	// WithRequireLeader ends the watch when the member loses its leader
	// instead of serving a stale stream.
	wch := v.client.Watch(clientv3.WithRequireLeader(ctx), v.prefix, clientv3.WithPrefix(), clientv3.WithRev(from))
	for resp := range wch {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			return fmt.Errorf("etcd v3 %s: watch from revision %d: %w", v.endpoint, from, errCompacted)
		}
		if err := resp.Err(); err != nil {
			return fmt.Errorf("etcd v3 %s: watch: %w", v.endpoint, err)
		}
		if resp.Canceled {
			return fmt.Errorf("etcd v3 %s: watch canceled by the server", v.endpoint)
		}
		if len(resp.Events) == 0 {
			continue // progress notification
		}
		cs := make([]change, 0, len(resp.Events))
		for _, e := range resp.Events {
			c := change{key: string(e.Kv.Key)}
			if e.Type == clientv3.EventTypeDelete {
				c.deleted = true
			} else {
				c.value = string(e.Kv.Value)
			}
			cs = append(cs, c)
		}
		if err := emit(cs); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("etcd v3 %s: watch closed", v.endpoint)
}

func (v *v3Session) probe(ctx context.Context) error {
	if _, err := v.client.Get(ctx, v.prefix, clientv3.WithPrefix(), clientv3.WithLimit(1), clientv3.WithKeysOnly()); err != nil {
		return fmt.Errorf("etcd v3 %s: %w", v.endpoint, err)
	}
	return nil
}
