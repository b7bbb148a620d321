package docker

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"testing"
)

// layerFiles lists the files of every layer of image (from docker save),
// by layer: a file deleted in a later layer still ships in the one that
// added it.
func layerFiles(t *testing.T, image string) map[string][]string {
	t.Helper()
	cmd := exec.Command("docker", "save", image)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	layers := map[string][]string{}
	outer := tar.NewReader(out)
	for {
		h, err := outer.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("docker save %s: %v", image, err)
		}
		// Docker's format has <id>/layer.tar; the OCI layout has blobs,
		// some of them layers. Whatever reads as a tar is a layer.
		if h.Typeflag != tar.TypeReg || !(strings.HasSuffix(h.Name, "/layer.tar") || strings.HasPrefix(h.Name, "blobs/")) {
			continue
		}
		inner := tar.NewReader(outer)
		var names []string
		for {
			f, err := inner.Next()
			if err != nil {
				break
			}
			names = append(names, strings.TrimPrefix(f.Name, "./"))
		}
		if len(names) > 0 {
			layers[h.Name] = names
		}
	}
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("docker save %s: %v", image, err)
	}
	if len(layers) == 0 {
		t.Fatalf("docker save %s: no layer found", image)
	}
	return layers
}

// isCache reports what a layer must not carry: apt's package lists and
// caches, the Go build and module caches, the toolchain and the build
// stage's sources (only the binaries leave that stage).
func isCache(f string) bool {
	if rest, ok := strings.CutPrefix(f, "var/lib/apt/lists/"); ok {
		return rest != "" && rest != "lock" && strings.TrimSuffix(rest, "/") != "partial"
	}
	if strings.HasPrefix(f, "var/cache/apt/") && (strings.HasSuffix(f, ".bin") || strings.HasSuffix(f, ".deb")) {
		return true
	}
	for _, p := range []string{"root/.cache/", "root/go/", "go/", "usr/local/go/", "src/"} {
		if strings.HasPrefix(f, p) {
			return true
		}
	}
	return strings.HasSuffix(f, ".go")
}

// secretRE matches environment variables and build commands that would
// carry a credential or this machine's build set-up into an image.
var secretRE = regexp.MustCompile(`(?i)(password|passwd|secret|token|api_?key|private|GOPROXY|GOFLAGS|_CA_CERT)`)

func TestImagesCarryNoCachesOrSecrets(t *testing.T) {
	images(t)
	for _, image := range []string{syncImage, reloadImage} {
		t.Run(image, func(t *testing.T) {
			var n int
			for layer, files := range layerFiles(t, image) {
				for _, f := range files {
					n++
					if strings.Contains(path.Base(f), ".wh.") {
						continue // a whiteout: a deletion
					}
					if isCache(f) {
						t.Errorf("layer %s ships %s", layer, f)
					}
				}
			}
			if n < 1000 {
				t.Errorf("only %d files in all layers: not the image expected", n)
			}

			var inspect []struct {
				Config struct{ Env []string }
				Size   int64
			}
			if err := json.Unmarshal([]byte(must(t, "docker", "image", "inspect", image)), &inspect); err != nil || len(inspect) != 1 {
				t.Fatalf("docker image inspect: %v", err)
			}
			for _, e := range inspect[0].Config.Env {
				if secretRE.MatchString(e) {
					t.Errorf("environment %s", e)
				}
			}
			for _, l := range strings.Split(must(t, "docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image), "\n") {
				if secretRE.MatchString(l) {
					t.Errorf("history: %s", l)
				}
			}
			t.Logf("%s: %.1f MB", image, float64(inspect[0].Size)/1e6)
		})
	}
}

func TestSyncImageRunsAsItsUser(t *testing.T) {
	images(t)
	if u := must(t, "docker", "image", "inspect", "--format", "{{.Config.User}}", syncImage); u != "10001:10001" {
		t.Errorf("Config.User = %q, want 10001:10001", u)
	}
	if id := must(t, "docker", "run", "--rm", "--entrypoint", "id", syncImage); !strings.HasPrefix(id, "uid=10001(proxymatic) gid=10001(proxymatic)") {
		t.Errorf("id in the sync image: %s", id)
	}
	// It owns the directory it writes services.yaml into.
	if ls := must(t, "docker", "run", "--rm", "--entrypoint", "stat", syncImage, "-c", "%u", "/var/run/proxymatic"); ls != "10001" {
		t.Errorf("/var/run/proxymatic owned by %s, want 10001", ls)
	}
}

// TestImagesCarryTheVersion: --version in both images (and so
// proxymatic_build_info) names the commit the images were built from, as
// `make build` stamps the binaries. The build context has no .git, so
// images.sh must pass it as build arguments; without them both said
// "dev (commit unknown, ...)".
func TestImagesCarryTheVersion(t *testing.T) {
	images(t)
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("no git commit to compare with: %v", err)
	}
	commit := strings.TrimSpace(string(head))
	for image, args := range map[string][]string{
		syncImage:   {"run", "--rm", syncImage, "--version"},
		reloadImage: {"run", "--rm", "--entrypoint", "/usr/local/bin/proxymatic-reload", reloadImage, "--version"},
	} {
		out := must(t, "docker", args...)
		if !strings.Contains(out, "commit "+commit) || strings.Contains(out, "dev (") {
			t.Errorf("%s --version = %q, want the version and commit %s", image, out, commit)
		}
	}
}
