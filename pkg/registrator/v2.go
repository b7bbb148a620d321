package registrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// v2LongPoll bounds one wait=true request: a long poll on a connection that
// died without a reset would otherwise hang. When it expires the same
// waitIndex is asked again, which loses nothing.
const v2LongPoll = 5 * time.Minute

// etcd v2 error codes that are not failures.
const (
	v2KeyNotFound       = 100
	v2EventIndexCleared = 401
)

type v2Node struct {
	Key           string    `json:"key"`
	Value         string    `json:"value"`
	Dir           bool      `json:"dir"`
	Nodes         []*v2Node `json:"nodes"`
	ModifiedIndex uint64    `json:"modifiedIndex"`
}

type v2Response struct {
	Action string  `json:"action"`
	Node   *v2Node `json:"node"`
	// An error answer has these instead.
	ErrorCode int    `json:"errorCode"`
	Message   string `json:"message"`
	Index     uint64 `json:"index"`
}

type v2Session struct {
	client   *http.Client
	base     string // scheme://host:port
	path     string // /v2/keys/PREFIX, escaped
	user     string
	password string
	prefix   string
}

func (s *Source) openV2(_ context.Context, endpoint string) (session, error) {
	scheme := "http"
	tr := &http.Transport{
		Proxy:               nil, // etcd is reached directly, never through HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: s.opts.RequestTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: s.opts.RequestTimeout,
		MaxIdleConnsPerHost: 2,
	}
	if s.tls != nil {
		scheme = "https"
		tr.TLSClientConfig = s.tls.Clone()
	}
	return &v2Session{
		client:   &http.Client{Transport: tr},
		base:     scheme + "://" + endpoint,
		path:     "/v2/keys" + (&url.URL{Path: s.cfg.Prefix + "/"}).EscapedPath(),
		user:     s.cfg.Username,
		password: s.cfg.Password,
		prefix:   s.cfg.Prefix,
	}, nil
}

func (v *v2Session) close() { v.client.CloseIdleConnections() }

// get sends one GET and decodes the answer. The X-Etcd-Index header is
// returned as index (0 when absent).
func (v *v2Session) get(ctx context.Context, query url.Values) (*v2Response, uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.base+v.path+"?"+query.Encode(), nil)
	if err != nil {
		return nil, 0, err
	}
	if v.user != "" {
		req.SetBasicAuth(v.user, v.password)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("etcd v2 %s: %w", v.base, stripURL(err))
	}
	defer resp.Body.Close()
	index, _ := strconv.ParseUint(resp.Header.Get("X-Etcd-Index"), 10, 64)
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, index, fmt.Errorf("etcd v2 %s: reading answer: %w", v.base, stripURL(err))
	}
	if len(body) == 0 {
		// etcd ends an idle long poll with an empty 200.
		return nil, index, nil
	}
	var r v2Response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, index, fmt.Errorf("etcd v2 %s: %s: answer is not etcd JSON: %w", v.base, resp.Status, err)
	}
	if r.ErrorCode == 0 && resp.StatusCode >= 300 {
		return nil, index, fmt.Errorf("etcd v2 %s: %s", v.base, resp.Status)
	}
	if index == 0 {
		index = r.Index
	}
	return &r, index, nil
}

func (v *v2Session) list(ctx context.Context) (map[string]string, int64, error) {
	r, index, err := v.get(ctx, url.Values{"recursive": {"true"}})
	if err != nil {
		return nil, 0, err
	}
	kv := map[string]string{}
	switch {
	case r == nil:
		return nil, 0, fmt.Errorf("etcd v2 %s: empty answer to a read", v.base)
	case r.ErrorCode == v2KeyNotFound:
		// No registration yet: an empty state, not a failure.
	case r.ErrorCode != 0:
		return nil, 0, fmt.Errorf("etcd v2 %s: error %d: %s", v.base, r.ErrorCode, clip(r.Message))
	case r.Node != nil:
		flatten(r.Node, kv)
	}
	if index == 0 {
		return nil, 0, fmt.Errorf("etcd v2 %s: answer has no X-Etcd-Index", v.base)
	}
	return kv, int64(index), nil
}

func flatten(n *v2Node, kv map[string]string) {
	if !n.Dir {
		kv[n.Key] = n.Value
		return
	}
	for _, c := range n.Nodes {
		flatten(c, kv)
	}
}

func (v *v2Session) watch(ctx context.Context, from int64, emit func([]change) error) error {
	for {
		lctx, cancel := context.WithTimeout(ctx, v2LongPoll)
		r, _, err := v.get(lctx, url.Values{
			"wait":      {"true"},
			"recursive": {"true"},
			"waitIndex": {strconv.FormatInt(from, 10)},
		})
		expired := lctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case expired:
			continue // our own long-poll bound, not a failure
		case err != nil:
			return err
		case r == nil:
			continue
		case r.ErrorCode == v2EventIndexCleared:
			return fmt.Errorf("etcd v2 %s: waitIndex %d: %w", v.base, from, errCompacted)
		case r.ErrorCode != 0:
			return fmt.Errorf("etcd v2 %s: watch error %d: %s", v.base, r.ErrorCode, clip(r.Message))
		case r.Node == nil:
			return fmt.Errorf("etcd v2 %s: watch answer %q without a node", v.base, clip(r.Action))
		}
		// The next wait starts after this event, not from X-Etcd-Index: the
		// header is the index when the wait began, and events between the two
		// would be lost.
		from = int64(r.Node.ModifiedIndex) + 1
		var c change
		switch r.Action {
		case "set", "create", "update", "compareAndSwap":
			if r.Node.Dir {
				continue
			}
			c = change{key: r.Node.Key, value: r.Node.Value}
		case "delete", "expire", "compareAndDelete":
			c = change{key: r.Node.Key, deleted: true, dir: r.Node.Dir}
		default:
			continue
		}
		if err := emit([]change{c}); err != nil {
			return err
		}
	}
}

func (v *v2Session) probe(ctx context.Context) error {
	r, _, err := v.get(ctx, url.Values{})
	if err != nil {
		return err
	}
	if r == nil || (r.ErrorCode != 0 && r.ErrorCode != v2KeyNotFound) {
		return errors.New("etcd v2: unexpected answer to a probe")
	}
	return nil
}

// stripURL drops the request URL from a *url.Error: the endpoint is already
// in the message and the query string is noise.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
