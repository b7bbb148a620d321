package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/meltwater/proxymatic/internal/testbin"
	"github.com/meltwater/proxymatic/pkg/marathon/marathontest"
)

// repoRoot is the build context of the Dockerfiles.
const repoRoot = ".."

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, len(docs)+1, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

// yget walks a decoded YAML tree by map keys and list indexes.
func yget(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %q: not a mapping", path, k)
			}
			if v, ok = m[k]; !ok {
				t.Fatalf("at %v: no key %q", path, k)
			}
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: no item %d", path, k)
			}
			v = l[k]
		}
	}
	return v
}

func TestEveryYAMLFileParses(t *testing.T) {
	var n int
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(p); !d.IsDir() && (ext == ".yml" || ext == ".yaml") {
			n++
			yamlDocs(t, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 4 {
		t.Errorf("found %d YAML files under deploy/, want compose, Kubernetes and two CI examples", n)
	}
}

func TestComposeSharesTheServicesDirectory(t *testing.T) {
	doc := yamlDocs(t, "docker-compose.yml")[0]
	files := map[string]string{}  // service -> SERVICES_FILE
	mounts := map[string]string{} // service -> where the "services" volume is mounted
	for _, name := range []string{"sync", "reload"} {
		svc := yget(t, doc, "services", name)
		files[name] = yget(t, svc, "environment", "SERVICES_FILE").(string)
		for _, v := range yget(t, svc, "volumes").([]any) {
			parts := strings.Split(v.(string), ":")
			if parts[0] == "services" {
				mounts[name] = parts[1]
			}
		}
		if mounts[name] == "" {
			t.Fatalf("%s does not mount the services volume", name)
		}
		// A directory mount: the file is replaced by rename inside it.
		if filepath.Dir(files[name]) != mounts[name] {
			t.Errorf("%s: SERVICES_FILE %s is not directly in the mounted directory %s", name, files[name], mounts[name])
		}
		if yget(t, svc, "network_mode") != "host" {
			t.Errorf("%s: want network_mode host, as the original image ran", name)
		}
		df := yget(t, svc, "build", "dockerfile").(string)
		if _, err := os.Stat(filepath.Join(repoRoot, df)); err != nil {
			t.Errorf("%s: dockerfile: %v", name, err)
		}
	}
	if filepath.Base(files["sync"]) != filepath.Base(files["reload"]) {
		t.Errorf("sync writes %s, reload reads %s", files["sync"], files["reload"])
	}
	if cmd := yget(t, doc, "services", "reload", "command").([]any); len(cmd) == 0 || cmd[0] != "proxymatic-reload" {
		t.Errorf("reload command = %v, want the sidecar mode (proxymatic-reload first)", cmd)
	}
	yget(t, doc, "volumes", "services")
}

func TestKubernetesDaemonSet(t *testing.T) {
	docs := yamlDocs(t, "kubernetes/proxymatic.yaml")
	var ds map[string]any
	for _, d := range docs {
		if d["apiVersion"] == nil || d["kind"] == nil {
			t.Errorf("a document without apiVersion/kind: %v", d)
		}
		if d["kind"] == "DaemonSet" {
			ds = d
		}
	}
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	spec := yget(t, ds, "spec", "template", "spec")
	volumes := map[string]bool{}
	for _, v := range yget(t, spec, "volumes").([]any) {
		if _, ok := v.(map[string]any)["emptyDir"]; ok {
			volumes[v.(map[string]any)["name"].(string)] = true
		}
	}
	containers := yget(t, spec, "containers").([]any)
	var names []string
	servicesFile := map[string]string{}
	for i := range containers {
		c := yget(t, containers, i)
		name := yget(t, c, "name").(string)
		names = append(names, name)
		for _, probe := range []string{"readinessProbe", "livenessProbe"} {
			if p := yget(t, c, probe, "httpGet", "path"); p != "/status" {
				t.Errorf("%s %s path = %v, want /status", name, probe, p)
			}
		}
		for _, r := range []string{"cpu", "memory"} {
			yget(t, c, "resources", "requests", r)
		}
		var env = map[string]string{}
		for _, e := range yget(t, c, "env").([]any) {
			env[e.(map[string]any)["name"].(string)] = e.(map[string]any)["value"].(string)
		}
		servicesFile[name] = env["SERVICES_FILE"]
		var mounted bool
		for _, m := range yget(t, c, "volumeMounts").([]any) {
			mm := m.(map[string]any)
			if volumes[mm["name"].(string)] && mm["mountPath"] == filepath.Dir(env["SERVICES_FILE"]) {
				mounted = true
			}
		}
		if !mounted {
			t.Errorf("%s: SERVICES_FILE %q is not in a mounted emptyDir", name, env["SERVICES_FILE"])
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"reload", "sync"}) {
		t.Errorf("containers = %v, want sync and reload", names)
	}
	if filepath.Base(servicesFile["sync"]) != filepath.Base(servicesFile["reload"]) {
		t.Errorf("sync writes %s, reload reads %s", servicesFile["sync"], servicesFile["reload"])
	}
}

// The CI examples are run, not just read: the shell lines of each job that
// invoke our commands (and the mkdir they need) are taken from the YAML and
// run as the job would, with the job's variables, against the Marathon
// stand-in and the real haproxy and nginx. `make build` is stood in by a bin/
// holding the binaries built for these tests; installing packages is left
// out (they are installed here already).
func TestCIExamplesRunBothDryRuns(t *testing.T) {
	testbin.Require(t, "haproxy")
	testbin.Require(t, "nginx")
	bin := binaries(t)
	m := marathontest.New(t)
	port := freePort(t)
	m.SetApps(marathontest.BridgeApp("/shop/api", port).WithTask("10.0.0.7", 31007))
	// What a job that cannot reach Marathon compiles instead: the answer
	// saved with curl, as the examples' comments say.
	saved := httpGet(t, m.URL+"/v2/apps?embed=apps.tasks")
	// The repository's or project's CI variables: the discovery sources.
	vars := map[string]string{"MARATHON_URL": m.URL}
	for _, f := range []string{"ci/github-actions.yml", "ci/gitlab-ci.yml"} {
		b, _ := os.ReadFile(f)
		for _, want := range []string{"proxymatic-sync --once --dry-run", "proxymatic-reload --dry-run", "--output-dir", "artifact",
			"proxymatic-sync --once --dry-run --marathon \"file://"} {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("%s does not contain %q", f, want)
			}
		}
		jobs := ciJobs(t, yamlDocs(t, f)[0], vars)
		if len(jobs) < 2 {
			t.Fatalf("%s: want the live and the saved-answer jobs, have %d", f, len(jobs))
		}
		for _, job := range jobs {
			t.Run(filepath.Base(f)+"/"+job.name, func(t *testing.T) {
				// Short: the configs hold unix socket paths (at most 97 bytes
				// for HAProxy), which a test-named TempDir can exceed.
				dir, err := os.MkdirTemp("", "ci")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.RemoveAll(dir) })
				if err := os.Symlink(bin, filepath.Join(dir, "bin")); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Join(dir, "proxymatic"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "proxymatic", "apps.json"), []byte(saved), 0o644); err != nil {
					t.Fatal(err)
				}
				// Where each CI system checks the repository out.
				env := append(slices.Clone(job.env), "GITHUB_WORKSPACE="+dir, "CI_PROJECT_DIR="+dir)
				ran := map[string]bool{}
				for _, l := range job.lines {
					word := strings.Fields(l)[0]
					if word != "mkdir" && !strings.HasPrefix(word, "bin/proxymatic-") {
						continue
					}
					cmd := exec.Command("sh", "-ec", l)
					cmd.Dir = dir
					cmd.Env = cleanEnv(env...)
					out, err := cmd.CombinedOutput()
					if err != nil {
						t.Fatalf("%s: %q: %v\n%s", f, l, err, out)
					}
					t.Logf("ran %q:\n%s", l, out)
					ran[word] = true
				}
				if !ran["bin/proxymatic-sync"] || !ran["bin/proxymatic-reload"] {
					t.Fatalf("%s: not both dry runs found in job %s: ran %v of %q", f, job.name, ran, job.lines)
				}
				services, _ := os.ReadFile(filepath.Join(dir, "out", "services.yaml"))
				haproxy, _ := os.ReadFile(filepath.Join(dir, "out", "configs", "haproxy.cfg"))
				nginx, _ := os.ReadFile(filepath.Join(dir, "out", "configs", "nginx.conf"))
				for what, c := range map[string]struct {
					got  []byte
					want string
				}{
					"services.yaml": {services, fmt.Sprintf("- name: api.shop\n  port: %d\n", port)},
					"haproxy.cfg":   {haproxy, fmt.Sprintf("listen api.shop-%d\n", port)},
					"nginx.conf":    {nginx, "server_name api.shop.services.example.com;"},
				} {
					if !bytes.Contains(c.got, []byte(c.want)) || !bytes.Contains(c.got, []byte("10.0.0.7")) {
						t.Errorf("%s: %s lacks %q and the task:\n%s", f, what, c.want, c.got)
					}
				}
			})
		}
	}
}

// ciJob returns the environment and the shell lines of the one job of a
// GitHub Actions workflow (jobs.<job>: env, steps[].run, steps[].env) or a
// GitLab CI file (<job>: variables, before_script, script). GitHub's
// ${{ vars.NAME }} expands from vars (empty when unset, as GitHub does);
// GitLab takes project variables from vars as they are.
// ciJob is one job of a CI example: its variables and its shell lines.
type ciJob struct {
	name  string
	env   []string
	lines []string
}

// ciJobs reads every job of a GitHub Actions workflow or a GitLab CI file,
// with the repository's variables (vars) filled in.
func ciJobs(t *testing.T, doc map[string]any, vars map[string]string) []ciJob {
	t.Helper()
	expr := regexp.MustCompile(`\$\{\{\s*vars\.([A-Za-z0-9_]+)\s*\}\}`)
	one := func(name string, job map[string]any, gitlab bool) ciJob {
		set := map[string]string{}
		var lines []string
		addEnv := func(m any) {
			mm, _ := m.(map[string]any)
			for k, v := range mm {
				set[k] = expr.ReplaceAllStringFunc(fmt.Sprint(v), func(e string) string { return vars[expr.FindStringSubmatch(e)[1]] })
			}
		}
		addLines := func(text string) {
			for _, l := range strings.Split(text, "\n") {
				if l = strings.TrimSpace(l); l != "" {
					lines = append(lines, l)
				}
			}
		}
		if gitlab {
			for k, v := range vars {
				set[k] = v
			}
			addEnv(job["variables"])
			for _, key := range []string{"before_script", "script"} {
				items, _ := job[key].([]any)
				for _, it := range items {
					addLines(fmt.Sprint(it))
				}
			}
		} else {
			addEnv(job["env"])
			for _, st := range job["steps"].([]any) {
				step := st.(map[string]any)
				addEnv(step["env"])
				if run, ok := step["run"].(string); ok {
					addLines(run)
				}
			}
		}
		var env []string
		for k, v := range set {
			env = append(env, k+"="+v)
		}
		slices.Sort(env)
		return ciJob{name: name, env: env, lines: lines}
	}
	var out []ciJob
	if jobs, ok := doc["jobs"].(map[string]any); ok { // GitHub Actions
		for name, j := range jobs {
			out = append(out, one(name, j.(map[string]any), false))
		}
	} else { // GitLab CI: every mapping with a script
		for name, j := range doc {
			if jm, ok := j.(map[string]any); ok && jm["script"] != nil {
				out = append(out, one(name, jm, true))
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no job with a script")
	}
	slices.SortFunc(out, func(a, b ciJob) int { return strings.Compare(a.name, b.name) })
	return out
}

// unit is a systemd unit file: section -> key -> values.
type unit map[string]map[string][]string

// parseUnit reads the INI dialect of systemd.unit(5): sections, key=value,
// comments, and backslash continuation lines.
func parseUnit(r io.Reader) (unit, error) {
	u := unit{}
	section := ""
	sc := bufio.NewScanner(r)
	line := 0
	var pending string
	for sc.Scan() {
		line++
		l := strings.TrimSpace(sc.Text())
		if pending == "" && (l == "" || l[0] == '#' || l[0] == ';') {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			pending += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		l, pending = pending+l, ""
		if strings.HasPrefix(l, "[") {
			if !strings.HasSuffix(l, "]") {
				return nil, fmt.Errorf("line %d: bad section header %q", line, l)
			}
			section = l[1 : len(l)-1]
			if u[section] != nil {
				return nil, fmt.Errorf("line %d: section %s twice", line, section)
			}
			u[section] = map[string][]string{}
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		k = strings.TrimSpace(k)
		if !ok || section == "" || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("line %d: not key=value in a section: %q", line, l)
		}
		u[section][k] = append(u[section][k], strings.TrimSpace(v))
	}
	if pending != "" {
		return nil, errors.New("ends in a continuation line")
	}
	return u, sc.Err()
}

func mustUnit(t *testing.T, path string) unit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return u
}

func TestParseUnitRejectsWhatSystemdWould(t *testing.T) {
	for _, bad := range []string{
		"Description=before any section\n",
		"[Unit]\nthis is no key value line\n",
		"[Unit\nDescription=x\n",
		"[Unit]\nDescription=x\n[Unit]\n",
		"[Service]\nExecStart=/bin/true \\\n",
	} {
		if _, err := parseUnit(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	u, err := parseUnit(strings.NewReader("# c\n[Service]\nExecStart=/bin/a \\\n  -b\nEnvironment=A=1\nEnvironment=B=2\n"))
	if err != nil || u["Service"]["ExecStart"][0] != "/bin/a  -b" || len(u["Service"]["Environment"]) != 2 {
		t.Errorf("parsed %v, %v", u, err)
	}
}

func TestSystemdUnits(t *testing.T) {
	want := map[string]string{
		"systemd/proxymatic-sync.service":   "/usr/local/bin/proxymatic-sync",
		"systemd/proxymatic-reload.service": "/usr/local/bin/proxymatic-reload",
		"systemd/proxymatic.service":        "/usr/bin/docker run",
	}
	for path, exec := range want {
		u := mustUnit(t, path)
		for _, s := range []string{"Unit", "Service", "Install"} {
			if u[s] == nil {
				t.Errorf("%s: no [%s]", path, s)
			}
		}
		if got := u["Service"]["ExecStart"]; len(got) != 1 || !strings.HasPrefix(got[0], exec) {
			t.Errorf("%s: ExecStart = %q, want %s...", path, got, exec)
		}
		if u["Unit"]["Description"] == nil || u["Install"]["WantedBy"] == nil {
			t.Errorf("%s: want Description and WantedBy", path)
		}
	}
	// Both host units must agree on the file they share.
	s := mustUnit(t, "systemd/proxymatic-sync.service")["Service"]["Environment"]
	r := mustUnit(t, "systemd/proxymatic-reload.service")["Service"]["Environment"]
	if !slices.Contains(s, "SERVICES_FILE=/run/proxymatic/services.yaml") || !slices.Contains(r, "SERVICES_FILE=/run/proxymatic/services.yaml") {
		t.Errorf("sync and reload units do not share SERVICES_FILE: %q, %q", s, r)
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string
	args string
}

func dockerfile(t *testing.T, name string) []instruction {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	var cur string
	for _, l := range strings.Split(string(b), "\n") {
		tl := strings.TrimSpace(l)
		if strings.HasPrefix(tl, "#") || (tl == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(tl, "\\") {
			cur += strings.TrimSuffix(tl, "\\") + " "
			continue
		}
		cur += tl
		cmd, args, _ := strings.Cut(cur, " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur = ""
	}
	return out
}

// dockerignore compiles .dockerignore into an "is this path sent to the
// build" check: last matching pattern wins, "!" re-includes, a pattern that
// matches a parent directory matches what is inside.
func dockerignore(t *testing.T) func(rel string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	type rule struct {
		re     *regexp.Regexp
		negate bool
	}
	var rules []rule
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		neg := strings.HasPrefix(l, "!")
		l = strings.TrimSuffix(strings.TrimPrefix(l, "!"), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(l); i++ {
			switch {
			case strings.HasPrefix(l[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(l[i:], "**"):
				re.WriteString(".*")
				i++
			case l[i] == '*':
				re.WriteString("[^/]*")
			case l[i] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(l[i : i+1]))
			}
		}
		re.WriteString("$")
		rules = append(rules, rule{regexp.MustCompile(re.String()), neg})
	}
	return func(rel string) bool {
		included := true
		for _, r := range rules {
			for p := rel; p != "." && p != "/"; p = filepath.Dir(p) {
				if r.re.MatchString(p) {
					included = r.negate
					break
				}
			}
		}
		return included
	}
}

func TestDockerfilesReferenceWhatExists(t *testing.T) {
	included := dockerignore(t)
	for _, name := range []string{"Dockerfile.sync", "Dockerfile.reload"} {
		t.Run(name, func(t *testing.T) {
			ins := dockerfile(t, name)
			installed := map[string]bool{} // paths in the final image
			var froms, user, entrypoint, health string
			var text strings.Builder
			for _, in := range ins {
				text.WriteString(in.cmd + " " + in.args + "\n")
				switch in.cmd {
				case "FROM":
					froms += in.args + "\n"
					installed = map[string]bool{}
				case "COPY":
					fields := strings.Fields(in.args)
					var fromStage bool
					for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
						fromStage = fromStage || strings.HasPrefix(fields[0], "--from=")
						fields = fields[1:]
					}
					srcs, dst := fields[:len(fields)-1], fields[len(fields)-1]
					for _, src := range srcs {
						if strings.HasSuffix(dst, "/") {
							installed[dst+filepath.Base(src)] = true
						} else {
							installed[dst] = true
						}
						if !fromStage {
							checkContext(t, included, src)
						}
					}
				case "USER":
					user = in.args
				case "ENTRYPOINT":
					entrypoint = in.args
				case "HEALTHCHECK":
					_, health, _ = strings.Cut(in.args, "CMD ")
				}
			}
			if !strings.Contains(froms, "golang:1.26-bookworm AS build") || !strings.Contains(froms, "debian:bookworm-slim") {
				t.Errorf("stages = %q, want golang:1.26-bookworm builder and debian:bookworm-slim runtime", froms)
			}
			if !strings.Contains(text.String(), "CGO_ENABLED=0") {
				t.Error("no CGO_ENABLED=0 build")
			}
			var ep, hc []string
			if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) == 0 {
				t.Fatalf("ENTRYPOINT %q is not an exec-form JSON array: %v", entrypoint, err)
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(health)), &hc); err != nil || len(hc) == 0 {
				t.Fatalf("HEALTHCHECK CMD %q is not an exec-form JSON array: %v", health, err)
			}
			if !installed[hc[0]] {
				t.Errorf("HEALTHCHECK runs %s, which no COPY installs", hc[0])
			}
			switch name {
			case "Dockerfile.sync":
				if !installed[ep[0]] || ep[0] != "/usr/local/bin/proxymatic-sync" {
					t.Errorf("ENTRYPOINT %v: want the installed /usr/local/bin/proxymatic-sync", ep)
				}
				if user == "" || user == "root" || strings.HasPrefix(user, "0") {
					t.Errorf("USER = %q, want a non-root user", user)
				}
				if !slices.Contains(hc, "sync") {
					t.Errorf("HEALTHCHECK %v does not check sync's endpoint", hc)
				}
			case "Dockerfile.reload":
				if !slices.Equal(ep, []string{"/usr/bin/tini", "--", "/usr/local/bin/docker-entrypoint.sh"}) {
					t.Errorf("ENTRYPOINT = %v, want tini running /usr/local/bin/docker-entrypoint.sh", ep)
				}
				for _, p := range []string{"/usr/local/bin/docker-entrypoint.sh", "/usr/local/bin/proxymatic-sync", "/usr/local/bin/proxymatic-reload"} {
					if !installed[p] {
						t.Errorf("%s is not installed by a COPY", p)
					}
				}
				for _, pkg := range []string{"haproxy", "nginx", "pen", "tini"} {
					if !regexp.MustCompile(`apt-get install[^&]*\b` + pkg + `\b`).MatchString(text.String()) {
						t.Errorf("package %s is not installed", pkg)
					}
				}
			}
			for _, m := range regexp.MustCompile(`\./cmd/[a-z-]+`).FindAllString(text.String(), -1) {
				if _, err := os.Stat(filepath.Join(repoRoot, m, "main.go")); err != nil {
					t.Errorf("builds %s: %v", m, err)
				}
			}
		})
	}
}

// checkContext fails unless src exists and the build context (after
// .dockerignore) holds it and, for a directory, every non-test Go file in it.
func checkContext(t *testing.T, included func(string) bool, src string) {
	t.Helper()
	src = filepath.Clean(src)
	st, err := os.Stat(filepath.Join(repoRoot, src))
	if err != nil {
		t.Errorf("COPY %s: %v", src, err)
		return
	}
	if !st.IsDir() {
		if !included(src) {
			t.Errorf("COPY %s: excluded by .dockerignore", src)
		}
		return
	}
	var files int
	filepath.WalkDir(filepath.Join(repoRoot, src), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		needed := !strings.HasSuffix(rel, "_test.go") && !strings.Contains(rel, "/testdata/")
		if needed && !included(rel) {
			t.Errorf("COPY %s: %s is excluded by .dockerignore", src, rel)
		}
		if included(rel) {
			files++
		}
		return nil
	})
	if files == 0 {
		t.Errorf("COPY %s: nothing of it reaches the build context", src)
	}
}

func TestDockerignoreKeepsContextSmall(t *testing.T) {
	included := dockerignore(t)
	for _, rel := range []string{"bin/proxymatic-sync", ".git/config", "pkg/services/services_test.go", "pkg/services/testdata/fuzz/x", "deploy/kubernetes/proxymatic.yaml"} {
		if included(rel) {
			t.Errorf("%s is sent to the build context", rel)
		}
	}
	for _, rel := range []string{"go.mod", "pkg/services/services.go", "deploy/docker-entrypoint.sh", "pkg/haproxy/templates/haproxy.cfg.tmpl"} {
		if !included(rel) {
			t.Errorf("%s is not sent to the build context", rel)
		}
	}
}

// httpGet returns the body of a 200 answer.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}
