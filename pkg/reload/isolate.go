package reload

import (
	"context"
	"fmt"
	"time"

	"github.com/meltwater/proxymatic/pkg/render"
	"github.com/meltwater/proxymatic/pkg/services"
)

// maxIsolationRounds bounds the checks of one apply after the first: nginx
// names one bad virtual host per check, HAProxy every parse error at once
// and its later (post-parse) errors in a second round. Each round is one
// `haproxy -c` or `nginx -t`.
const maxIsolationRounds = 8

// checkIsolating stages and checks want, this proxy's config rendered in
// files. When the proxy refuses it and its message points at services
// (render.Files.Blame: by line or section name), the config is rendered
// again without them and checked again, until it passes or nothing
// attributable is left: one service a proxy refuses must not hold back
// every other service's change. It returns the staged candidate that
// passed, the files it was rendered from and the services left out. An
// error means the proxy refused and no service could be blamed for all of
// it: the running config stays, as before.
func (s *single) checkIsolating(ctx context.Context, files *render.Files, want []byte) (string, *render.Files, []render.Refusal, error) {
	var refused []render.Refusal
	dropped := map[services.Key]bool{}
	for round := 0; ; round++ {
		tmp, err := s.file.stage(want)
		if err != nil {
			return "", nil, nil, err
		}
		start := time.Now()
		err = s.check(ctx, tmp)
		s.log.Debug("config checked", "proxy", s.proxyName, "round", round, "took", time.Since(start).Round(time.Millisecond))
		if err == nil {
			return tmp, files, refused, nil
		}
		s.file.discard(tmp)
		if ctx.Err() != nil {
			// The check was killed (SIGTERM): nothing was decided about
			// the config.
			return "", nil, nil, fmt.Errorf("%s: config check cancelled: %w", s.proxyName, ctx.Err())
		}
		rejected := fmt.Errorf("%s: %w: %w", s.proxyName, errRejected, err)
		if !s.isolate || round >= maxIsolationRounds {
			return "", nil, nil, rejected
		}
		blamed, all := files.Blame(s.proxyName, want, tmp, err.Error())
		if !all || len(blamed) == 0 {
			if len(blamed) > 0 {
				s.log.Warn("the proxy's message names services, but also errors no service accounts for; nothing is left out",
					"proxy", s.proxyName, "named", len(blamed))
			}
			return "", nil, nil, rejected
		}
		for _, r := range blamed {
			dropped[r.Service] = true
		}
		refused = append(refused, blamed...)
		if files, err = files.Without(s.proxyName, dropped); err != nil {
			return "", nil, nil, fmt.Errorf("%w (rendering without the services it names: %w)", rejected, err)
		}
		want = s.pick(files)
	}
}

// reportRefusals logs and counts the services p's last apply left out
// because the proxy refused them (the report explains them: report.go).
func (a *agent) reportRefusals(p proxy) {
	refused := p.refusals()
	for _, r := range refused {
		a.log.Error("service left out: the proxy refused its part of the config; the other services are applied",
			"proxy", r.Proxy, "service", r.Name, "key", r.Service.String(), "reason", r.Message)
	}
	servicesRefused.WithLabelValues(p.name()).Set(float64(len(refused)))
	servicesRefusedTotal.WithLabelValues(p.name()).Add(float64(len(refused)))
}
