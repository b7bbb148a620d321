package syncer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meltwater/proxymatic/pkg/config"
	"github.com/meltwater/proxymatic/pkg/marathon"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// The contract of the incremental Marathon path (issue 14): after any
// sequence of events, services.yaml is byte-equal to what
// `proxymatic-sync --once` compiles from the same Marathon state. The
// daemon runs for real (Main, its Marathon source, atomicfile) against the
// stand-in, which sends the events real Marathon sends for each change;
// the poll is an hour away, so only events (and the reads they cause) can
// bring the file in line. CONTRACT_SEEDS runs more sequences.

// contractApp draws an app definition from a small space: apps share
// service ports, move onto each other's with labels, and have health
// checks or not.
func contractApp(r *rand.Rand, id string) *marathontest.App {
	ports := []int{10001, 10002, 10003}
	var a *marathontest.App
	if r.IntN(2) == 0 {
		a = marathontest.BridgeApp(id, ports[r.IntN(len(ports))])
	} else {
		a = marathontest.HostApp(id, ports[r.IntN(len(ports))], 10010+r.IntN(2))
	}
	contractLabels(r, a)
	if r.IntN(2) == 0 {
		a.WithHealthCheck(marathontest.HealthCheck{Path: "/health"})
	}
	for range r.IntN(3) {
		t := a.AddTask(contractHost(r), contractPorts(r)...)
		if r.IntN(3) == 0 && len(a.HealthChecks) > 0 {
			t.Health = nil
		}
	}
	return a
}

func contractLabels(r *rand.Rand, a *marathontest.App) {
	const L = marathon.LabelPrefix
	a.Labels = nil
	if r.IntN(3) == 0 {
		a.WithLabel(L+"0.weight", strconv.Itoa(r.IntN(1001)))
	}
	if r.IntN(4) == 0 {
		a.WithLabel(L+"0.mode", "http")
	}
	if r.IntN(5) == 0 {
		a.WithLabel(L+"0.servicePort", strconv.Itoa(10001+r.IntN(3)))
	}
	if r.IntN(6) == 0 {
		a.WithLabel(L+"0.weight", "oops")
	}
}

func contractHost(r *rand.Rand) string { return "10.0.0." + strconv.Itoa(1+r.IntN(4)) }

func contractPorts(r *rand.Rand) []int {
	return []int{31000 + r.IntN(4), 32000 + r.IntN(4)}
}

// onceFile is what `proxymatic-sync --once --dry-run` prints for m.
func onceFile(t *testing.T, m *marathontest.Server) []byte {
	t.Helper()
	var out bytes.Buffer
	cfg := &config.Sync{Marathon: []string{m.URL}, Once: true, DryRun: true, RefreshInterval: 10 * time.Second, GroupSize: 1}
	if err := Main(context.Background(), cfg, slog.New(slog.DiscardHandler), &out); err != nil {
		t.Fatalf("--once: %v", err)
	}
	return out.Bytes()
}

func TestContractEventsMatchOnce(t *testing.T) {
	seeds := 4
	if n, err := strconv.Atoi(os.Getenv("CONTRACT_SEEDS")); err == nil {
		seeds = n
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runContract(t, uint64(seed), 60) })
	}
}

func runContract(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 14))
	m := marathontest.New(t)
	ids := []string{"/a/web", "/a/api", "/b/web", "/b/db", "/c"}
	m.SetApps(contractApp(r, ids[0]), contractApp(r, ids[1]))
	out := filepath.Join(t.TempDir(), "services.yaml")
	var logs logBuffer
	runMain(t, &config.Sync{Marathon: []string{m.URL}, RefreshInterval: time.Hour, GroupSize: 1, HealthCacheSize: 1000, Output: out}, &logs)
	waitSubscribed(t, m)

	var ops []string
	drops := 0
	did := func(format string, args ...any) { ops = append(ops, fmt.Sprintf(format, args...)) }
	onceReads := 0
	check := func() {
		t.Helper()
		want := onceFile(t, m)
		onceReads++
		deadline := time.Now().Add(hangGuard)
		for {
			got, _ := os.ReadFile(out)
			if bytes.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("after\n  %s\nservices.yaml\n%s\n--once compiles\n%s\nlog:\n%s", strings.Join(ops, "\n  "), got, want, logs.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	check()
	for step := range steps {
		present := m.AppIDs()
		pick := func() (string, *marathontest.App) {
			if len(present) == 0 {
				return "", nil
			}
			id := present[r.IntN(len(present))]
			return id, m.App(id)
		}
		pickTask := func(a *marathontest.App) *marathontest.Task {
			if a == nil || len(a.Tasks) == 0 {
				return nil
			}
			return a.Tasks[r.IntN(len(a.Tasks))]
		}
		switch op := r.IntN(20); {
		case op < 2: // an app created, and at once one more task of it
			id := ids[r.IntN(len(ids))]
			if m.App(id) != nil {
				continue
			}
			m.AddApp(contractApp(r, id))
			did("add %s", id)
			if r.IntN(2) == 0 {
				m.StartTask(id, r.IntN(2) == 0, contractHost(r), contractPorts(r)...)
				did("start a task of the new %s", id)
			}
		case op < 6:
			if id, a := pick(); a != nil {
				healthy := r.IntN(3) > 0
				tk := m.StartTask(id, healthy, contractHost(r), contractPorts(r)...)
				did("start %s healthy=%v on %s%v", tk.ID, healthy, tk.Host, tk.Ports)
			}
		case op < 9:
			if id, a := pick(); a != nil {
				if tk := pickTask(a); tk != nil {
					m.KillTask(id, tk.ID)
					did("kill %s", tk.ID)
				}
			}
		case op < 12:
			if id, a := pick(); a != nil && len(a.HealthChecks) > 0 {
				if tk := pickTask(a); tk != nil {
					alive := r.IntN(2) == 0
					m.SetHealth(id, tk.ID, alive)
					did("health %s alive=%v", tk.ID, alive)
				}
			}
		case op < 13:
			if id, a := pick(); a != nil {
				m.ScaleApp(id)
				did("scale %s", id)
			}
		case op < 15:
			if id, a := pick(); a != nil {
				check := r.IntN(3)
				m.UpdateApp(id, func(a *marathontest.App) {
					contractLabels(r, a)
					switch check {
					case 0:
						a.HealthChecks = nil
					case 1:
						if len(a.HealthChecks) == 0 {
							a.WithHealthCheck(marathontest.HealthCheck{Path: "/ready"})
						}
					}
				})
				did("update %s labels=%v checks=%d", id, m.App(id).Labels, len(m.App(id).HealthChecks))
			}
		case op < 16:
			if id, a := pick(); a != nil {
				m.DeleteApp(id)
				did("delete %s", id)
			}
		case op < 17:
			on := r.IntN(2) == 0
			m.DuplicateEvents(on)
			did("duplicate events %v", on)
		case op < 18:
			on := r.IntN(2) == 0
			m.HealthBeforeStatus(on)
			did("health before status %v", on)
		case op < 19:
			if step%3 == 0 {
				n := 1 + r.IntN(4)
				m.DropStreamAfter(n)
				drops++
				did("drop the stream after %d events", n)
			}
		default:
			on := r.IntN(2) == 0
			m.HealthEventsByTaskID(on)
			did("health events by task id %v", on)
		}
		if step%4 == 3 {
			check()
		}
	}
	m.DropStreamAfter(0)
	check()
	// (Drift is looked for by the scheduled poll only, which this test's
	// hour-long interval never reaches: the comparisons with --once above
	// are what hold the state; TestPollReportsDrift in pkg/marathon holds
	// the drift report.)
	// The file followed through events: Marathon was read whole only at
	// start and after each dropped stream (the test's own --once reads
	// aside), so the comparisons above held the incremental path.
	if full := m.Requests("/v2/apps") - onceReads; full > 1+drops {
		t.Errorf("%d full reads of /v2/apps for %d dropped streams\n%s", full, drops, logs.String())
	}
}
