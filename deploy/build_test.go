package deploy_test

import (
	"context"
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const versionPkg = "github.com/prometheus/common/version"

// buildVars are the version variables the Makefile and the Dockerfile set,
// with recognisable test values.
var buildVars = []struct{ name, value string }{
	{"Version", "9.8.7-buildtest"},
	{"Revision", "0123456789abcdef0123456789abcdef01234567"},
	{"Branch", "build-test"},
	{"BuildUser", "tester@ci"},
	{"BuildDate", "20260102-03:04:05"},
}

func buildLdflags() string {
	flags := []string{"-s", "-w"}
	for _, v := range buildVars {
		flags = append(flags, fmt.Sprintf("-X '%s.%s=%s'", versionPkg, v.name, v.value))
	}
	return strings.Join(flags, " ")
}

// TestBuildFlagsAgree: the Makefile and the Dockerfile build the same way —
// static, trimmed paths, every version variable injected — and the image runs
// as the non-root user on the documented port and config path.
func TestBuildFlagsAgree(t *testing.T) {
	makefile := string(readFile(t, repoPath(t, "Makefile")))
	dockerfile := string(readFile(t, repoPath(t, "Dockerfile")))
	for _, file := range []struct{ name, text string }{{"Makefile", makefile}, {"Dockerfile", dockerfile}} {
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", " build "} {
			if !strings.Contains(file.text, want) {
				t.Errorf("%s lacks %q", file.name, want)
			}
		}
		for _, v := range buildVars {
			if !strings.Contains(file.text, "."+v.name+"=") {
				t.Errorf("%s does not set %s.%s", file.name, versionPkg, v.name)
			}
		}
	}
	if !strings.Contains(makefile, "VERSION_PKG := "+versionPkg) {
		t.Errorf("Makefile: VERSION_PKG is not %s", versionPkg)
	}
	if strings.Count(dockerfile, "-X "+versionPkg+".") != len(buildVars) {
		t.Errorf("Dockerfile: want %d -X %s.* flags", len(buildVars), versionPkg)
	}
	for _, want := range []string{
		"FROM golang:",
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"USER 65532:65532",
		fmt.Sprintf("EXPOSE %d", exporterPort),
		`ENTRYPOINT ["/bin/yunxiao_exporter"]`,
		`CMD ["--config.file=` + configFilePath + `"]`,
	} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	for _, target := range []string{"build:", "test:", "generate:", "docker:"} {
		if !strings.Contains(makefile, "\n"+target) {
			t.Errorf("Makefile lacks target %s", strings.TrimSuffix(target, ":"))
		}
	}
}

// TestStaticBuild builds the exporter as `make build` and the Dockerfile do,
// checks that the binary is statically linked and reports the injected
// version, and runs --config.check on the example configs the deployments
// ship.
func TestStaticBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the exporter; skipped with -short")
	}
	if runtime.GOOS != "linux" {
		t.Skip("checks an ELF binary")
	}
	goTool := lookTool(t, "go") // go test itself runs with go on PATH
	bin := filepath.Join(t.TempDir(), "yunxiao_exporter")
	if _, err := tryRun(t, repoRoot(t), []string{"CGO_ENABLED=0"}, goTool,
		"build", "-trimpath", "-buildvcs=false", "-ldflags", buildLdflags(), "-o", bin, "."); err != nil {
		t.Fatal(err)
	}

	t.Run("static", func(t *testing.T) {
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("binary has a PT_INTERP program header: it is dynamically linked")
			}
		}
		libs, err := f.ImportedLibraries()
		if err != nil {
			t.Fatal(err)
		}
		if len(libs) > 0 {
			t.Errorf("binary needs shared libraries (DT_NEEDED) %v", libs)
		}
		info, err := buildinfo.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" {
			t.Errorf("build settings CGO_ENABLED=%q -trimpath=%q, want 0 and true", settings["CGO_ENABLED"], settings["-trimpath"])
		}
	})

	t.Run("version", func(t *testing.T) {
		// kingpin prints the version on its usage writer: stderr unless
		// main.go points it at stdout, so read both.
		out, err := exec.CommandContext(t.Context(), bin, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("--version: %v\n%s", err, out)
		}
		text := string(out)
		if !strings.Contains(text, "yunxiao_exporter") {
			t.Errorf("--version output lacks the program name:\n%s", text)
		}
		for _, v := range buildVars {
			if !strings.Contains(text, v.value) {
				t.Errorf("--version output lacks %s %q:\n%s", v.name, v.value, text)
			}
		}
	})

	t.Run("demo probes", func(t *testing.T) { probeDemo(t, bin) })

	// The example configs use only keys the exporter knows (unknown keys are
	// an error). token_file points at a scratch file here, since the real one
	// is only mounted in the container.
	t.Run("config check", func(t *testing.T) {
		tokenFile := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(tokenFile, []byte("pt-test-token\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		configs := map[string]map[string]any{
			"kustomize example": loadYAMLMap(t, repoPath(t, "deploy", "kubernetes", "overlays", "example", "config.yml")),
			"helm example":      loadYAMLMap(t, repoPath(t, chartDir, "ci", "example-values.yaml"))["config"].(map[string]any),
		}
		for name, cfg := range configs {
			yx, _ := cfg["yunxiao"].(map[string]any)
			if yx == nil {
				t.Fatalf("%s: no yunxiao section", name)
			}
			yx["token_file"] = tokenFile
			b, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "config.yml")
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := tryRun(t, t.TempDir(), nil, bin, "--config.check", "--config.file="+file); err != nil {
				t.Errorf("%s config:\n%s\n%v", name, b, err)
			}
		}
	})
}

// probeDemo runs the binary in --demo mode on a loopback port and checks the
// paths the Kubernetes probes and the scrape configs use.
func probeDemo(t *testing.T, bin string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--demo", "--web.listen-address="+addr)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("exporter log:\n%s", logs.String())
		}
	}()

	client := &http.Client{Timeout: 5 * time.Second}
	get := func(path string) (int, string) {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, string(body)
	}
	// Liveness first: it must answer as soon as the server is up.
	deadline := time.Now().Add(20 * time.Second)
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		for {
			code, body := get(path)
			if code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %d %s", path, code, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	code, body := get("/metrics")
	if code != http.StatusOK || !strings.Contains(body, "yunxiao_up") {
		t.Errorf("GET /metrics: %d, yunxiao_up missing", code)
	}
}

func loadYAMLMap(t *testing.T, file string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(readFile(t, file), &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return m
}
