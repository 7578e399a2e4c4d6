package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logfmt/logfmt"
	"github.com/prometheus/common/version"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

// TestOneLogStream runs the program in both log formats through start-up,
// a scrape with a failing pipeline, a reload and shutdown, and checks that
// every line, ours and exporter-toolkit's, parses and carries the same keys
// for time, level, source and message, with one time format.
func TestOneLogStream(t *testing.T) {
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1"}, flowsim.DemoPipelines()...)
	sim.Fault(1002, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
	})
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	common := []string{"time", "level", "source", "msg"}
	for _, format := range []string{"logfmt", "json"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			writeTestFile(t, filepath.Join(dir, "token"), []byte(testToken))
			cfgPath := filepath.Join(dir, "config.yml")
			writeConfig(t, cfgPath, api.URL, "  - id: 1001\n  - id: 1002\n")
			e := startExporter(t, "--config.file="+cfgPath, "--log.level=debug", "--log.format="+format)
			if code, _ := e.get("/metrics"); code != http.StatusOK {
				t.Fatalf("scrape: %d", code)
			}
			writeConfig(t, cfgPath, api.URL, "  - id: 1001\n")
			if code, body := e.do(http.MethodPost, "/-/reload"); code != http.StatusOK {
				t.Fatalf("reload: %d %s", code, body)
			}
			if code := e.stop(); code != 0 {
				t.Fatalf("exit %d", code)
			}

			lines := strings.Split(strings.TrimSpace(e.stderr.String()), "\n")
			var msgs []string
			for _, line := range lines {
				keys, values := parseLogLine(t, format, line)
				for _, k := range common {
					if keys[k] != 1 {
						t.Errorf("line has %q %d times, want once: %s", k, keys[k], line)
					}
				}
				for _, k := range []string{"ts", "caller"} {
					if keys[k] != 0 {
						t.Errorf("line has the old key %q: %s", k, line)
					}
				}
				if _, err := time.Parse(time.RFC3339Nano, values["time"]); err != nil {
					t.Errorf("time %q is not RFC 3339: %s", values["time"], line)
				}
				if lvl := strings.ToLower(values["level"]); lvl != "debug" && lvl != "info" && lvl != "warn" && lvl != "error" {
					t.Errorf("level %q: %s", values["level"], line)
				}
				if src := values["source"]; !strings.Contains(src, ".go:") || strings.Contains(src, "go-kit") || strings.HasPrefix(src, "logging.go") {
					t.Errorf("source %q is not the call site: %s", src, line)
				}
				msgs = append(msgs, values["msg"])
			}
			// The lines the test must have seen: ours at start-up, on the
			// failing pipeline, the reload and shutdown; the toolkit's.
			all := strings.Join(msgs, "\n")
			for _, want := range []string{"starting yunxiao_exporter", "Listening on", "pipeline fetch failed", "reloaded config", "shutting down"} {
				if !strings.Contains(all, want) {
					t.Errorf("no %q line among:\n%s", want, all)
				}
			}
		})
	}
}

// parseLogLine returns how often each key occurs on a line, and its values.
func parseLogLine(t *testing.T, format, line string) (map[string]int, map[string]string) {
	t.Helper()
	keys, values := map[string]int{}, map[string]string{}
	if format == "json" {
		// Decode twice: once to count keys (a map would merge duplicates).
		dec := json.NewDecoder(strings.NewReader(line))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Fatalf("not a JSON object: %s", line)
		}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			keys[k.(string)]++
			if s, ok := v.(string); ok {
				values[k.(string)] = s
			}
		}
		return keys, values
	}
	dec := logfmt.NewDecoder(strings.NewReader(line))
	if !dec.ScanRecord() {
		t.Fatalf("not a logfmt record: %s", line)
	}
	for dec.ScanKeyval() {
		keys[string(dec.Key())]++
		values[string(dec.Key())] = string(dec.Value())
	}
	if err := dec.Err(); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	return keys, values
}

// TestStartupConfigErrorExits: a broken config at start-up is not "kept
// previous": the program says it cannot start, with file, line and key.
func TestStartupConfigErrorExits(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yml")
	writeTestFile(t, cfgPath, []byte("yunxiao:\n  edition: centrall\n"))
	e := startExporter(t, "--config.file="+cfgPath)
	if code := <-e.done; code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	close(e.done)
	logs := e.stderr.String()
	if !strings.Contains(logs, "cannot start") || !strings.Contains(logs, "config.yml:2: yunxiao.edition: must be central or region") {
		t.Errorf("start-up error does not say why:\n%s", logs)
	}
	if strings.Contains(logs, "previous") {
		t.Errorf("start-up error mentions a previous config:\n%s", logs)
	}
}

// TestDemoReloadIsLogged: --demo has nothing to reload, and says so.
func TestDemoReloadIsLogged(t *testing.T) {
	e := startExporter(t, "--demo")
	if code, _ := e.do(http.MethodPost, "/-/reload"); code != http.StatusInternalServerError {
		t.Errorf("reload in demo mode: %d", code)
	}
	e.stop()
	if logs := e.stderr.String(); !strings.Contains(logs, "nothing to reload") {
		t.Errorf("demo reload not logged:\n%s", logs)
	}
}

func TestFillVersion(t *testing.T) {
	saved := [3]string{version.Version, version.Revision, version.BuildDate}
	t.Cleanup(func() { version.Version, version.Revision, version.BuildDate = saved[0], saved[1], saved[2] })
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-11-30T05:00:00Z"}, {Key: "vcs.modified", Value: "true"}}
	cases := []struct {
		name    string
		ldflags [3]string
		info    *debug.BuildInfo
		want    [3]string
	}{
		{"ldflags win", [3]string{"1.2.3", "deadbeef", "20261130"}, &debug.BuildInfo{Main: debug.Module{Version: "v9.9.9"}, Settings: vcs}, [3]string{"1.2.3", "deadbeef", "20261130"}},
		{"go build in a checkout", [3]string{}, &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261130050000-abc123"}, Settings: vcs}, [3]string{"v0.0.0-20261130050000-abc123", "abc123-modified", "2026-11-30T05:00:00Z"}},
		{"go run, no VCS", [3]string{}, &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, [3]string{"(devel)", "", ""}},
		{"no module version", [3]string{}, &debug.BuildInfo{}, [3]string{"(devel)", "", ""}},
		{"no build info", [3]string{}, nil, [3]string{}},
	}
	for _, tc := range cases {
		version.Version, version.Revision, version.BuildDate = tc.ldflags[0], tc.ldflags[1], tc.ldflags[2]
		fillVersion(tc.info)
		if got := [3]string{version.Version, version.Revision, version.BuildDate}; got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestPlainBuildNamesAVersion: `go build` with no ldflags, then --version,
// the build info metric and the User-Agent name a version.
func TestPlainBuildNamesAVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "yunxiao_exporter")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	if strings.Contains(first, "version  (") || !strings.Contains(first, "yunxiao_exporter, version ") {
		t.Errorf("--version names no version: %q", first)
	}

	// The same binary's User-Agent and build info.
	var agent atomic.Value // the handler runs on the server's goroutines
	agent.Store("")
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		agent.Store(r.Header.Get("User-Agent"))
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(api.Close)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "token"), []byte(testToken))
	cfgPath := filepath.Join(dir, "config.yml")
	writeConfig(t, cfgPath, api.URL, "  - id: 1\n    name: p\n")
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--web.listen-address=127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := ""
	sc := bufio.NewScanner(stderr)
	for addr == "" && sc.Scan() {
		if _, v, ok := strings.Cut(sc.Text(), "address="); ok && strings.Contains(sc.Text(), "Listening on") {
			addr = strings.Fields(v)[0]
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if addr == "" {
		t.Fatal("the binary never said where it listens")
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body strings.Builder
	_, _ = bufio.NewReader(resp.Body).WriteTo(&body)
	info := grep(body.String(), "yunxiao_exporter_build_info{")
	if info == "" || strings.Contains(info, `version=""`) {
		t.Errorf("build info names no version: %q", info)
	}
	if ua := agent.Load().(string); ua == "" || ua == "yunxiao_exporter/" {
		t.Errorf("User-Agent names no version: %q", ua)
	}
}
