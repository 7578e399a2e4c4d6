package deploy_test

import (
	"bytes"
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
	"regexp"
	"runtime"
	"slices"
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

// ---- Dockerfile ----

// dockerfile is a parsed Dockerfile: its parser directives, the defaults of
// the ARGs before the first FROM, and its stages.
type dockerfile struct {
	directives map[string]string
	globalArgs map[string]string
	stages     []dockerStage
}

type dockerStage struct {
	platform string // FROM --platform=..., as written
	image    string // with the global ARGs substituted
	name     string // AS name
	instrs   []dockerInstr
}

type dockerInstr struct {
	cmd  string // upper case: RUN, ARG, LABEL, ...
	args string // continuation lines joined, comments dropped
	line int
}

// parseDockerfile reads the subset of the Dockerfile syntax the checks need:
// parser directives, comments, line continuations, FROM with flags and AS.
func parseDockerfile(t *testing.T, text string) dockerfile {
	t.Helper()
	df := dockerfile{directives: map[string]string{}, globalArgs: map[string]string{}}
	lines := strings.Split(text, "\n")
	inDirectives := true
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		if strings.HasPrefix(trimmed, "#") {
			if inDirectives {
				if k, v, ok := strings.Cut(strings.TrimSpace(trimmed[1:]), "="); ok && !strings.ContainsAny(k, " \t") {
					df.directives[strings.ToLower(k)] = strings.TrimSpace(v)
					continue
				}
			}
			inDirectives = false
			continue
		}
		inDirectives = false
		if trimmed == "" {
			continue
		}
		start := i + 1
		var b strings.Builder
		for {
			l := strings.TrimRight(lines[i], " \t")
			cont := strings.HasSuffix(l, `\`)
			b.WriteString(strings.TrimSuffix(l, `\`))
			if !cont || i+1 >= len(lines) {
				break
			}
			b.WriteString(" ")
			// Comment lines inside a continuation are dropped.
			for i+1 < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i+1]), "#") {
				i++
			}
			i++
		}
		cmd, args, _ := strings.Cut(strings.TrimSpace(b.String()), " ")
		in := dockerInstr{cmd: strings.ToUpper(cmd), args: strings.Join(strings.Fields(args), " "), line: start}
		switch {
		case in.cmd == "FROM":
			df.stages = append(df.stages, df.parseFrom(t, in))
		case len(df.stages) == 0 && in.cmd == "ARG":
			k, v, _ := strings.Cut(in.args, "=")
			df.globalArgs[k] = strings.Trim(v, `"`)
		case len(df.stages) == 0:
			t.Fatalf("Dockerfile line %d: %s before the first FROM", in.line, in.cmd)
		default:
			s := &df.stages[len(df.stages)-1]
			s.instrs = append(s.instrs, in)
		}
	}
	if len(df.stages) == 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	return df
}

func (df dockerfile) parseFrom(t *testing.T, in dockerInstr) dockerStage {
	t.Helper()
	var s dockerStage
	fields := strings.Fields(in.args)
	for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
		if v, ok := strings.CutPrefix(fields[0], "--platform="); ok {
			s.platform = v
		}
		fields = fields[1:]
	}
	switch {
	case len(fields) == 1:
	case len(fields) == 3 && strings.EqualFold(fields[1], "AS"):
		s.name = fields[2]
	default:
		t.Fatalf("Dockerfile line %d: cannot parse FROM %s", in.line, in.args)
	}
	s.image = os.Expand(fields[0], func(k string) string { return df.globalArgs[k] })
	return s
}

// stageArgs are the ARGs a stage declares.
func (s dockerStage) args() map[string]bool {
	out := map[string]bool{}
	for _, in := range s.instrs {
		if in.cmd == "ARG" {
			for _, f := range strings.Fields(in.args) {
				k, _, _ := strings.Cut(f, "=")
				out[k] = true
			}
		}
	}
	return out
}

// goBuild is the stage's RUN that runs `go build`.
func (s dockerStage) goBuild() (dockerInstr, bool) {
	for _, in := range s.instrs {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build ") {
			return in, true
		}
	}
	return dockerInstr{}, false
}

// labels parses the stage's LABEL key="value" pairs.
func (s dockerStage) labels(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	pair := regexp.MustCompile(`([A-Za-z0-9._-]+)=("(?:[^"\\]|\\.)*"|\S+)`)
	for _, in := range s.instrs {
		if in.cmd != "LABEL" {
			continue
		}
		for _, m := range pair.FindAllStringSubmatch(in.args, -1) {
			out[m[1]] = strings.Trim(m[2], `"`)
		}
	}
	return out
}

// goModVersion is the `go` line of go.mod.
func goModVersion(t *testing.T) string {
	t.Helper()
	for _, l := range strings.Split(string(readFile(t, repoPath(t, "go.mod"))), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go line")
	return ""
}

// TestDockerfile: what a packager checks in the image build — the Go release
// go.mod needs, cross-compilation from the build platform, BuildKit caches,
// OCI labels with the injected version, a non-root final stage, a license.
func TestDockerfile(t *testing.T) {
	text := string(readFile(t, repoPath(t, "Dockerfile")))
	df := parseDockerfile(t, text)
	builder, final := df.stages[0], df.stages[len(df.stages)-1]
	for _, s := range df.stages {
		if strings.HasPrefix(s.image, "golang:") {
			builder = s
		}
	}
	goVersion := goModVersion(t)
	buildRun, hasBuild := builder.goBuild()
	labels := final.labels(t)
	makefile := string(readFile(t, repoPath(t, "Makefile")))
	const source = "https://github.com/yunxiao-exporter/yunxiao_exporter"

	check := func(ok bool, format string, args ...any) error {
		if ok {
			return nil
		}
		return fmt.Errorf(format, args...)
	}
	for _, tc := range []struct {
		name  string
		check func() error
	}{
		{"syntax directive on the first line", func() error {
			return check(strings.HasPrefix(text, "# syntax=docker/dockerfile:1\n"),
				"the first line is not `# syntax=docker/dockerfile:1` (needed for RUN --mount)")
		}},
		{"builder is golang at go.mod's go version", func() error {
			m := regexp.MustCompile(`^golang:(\d+\.\d+\.\d+)-(bookworm|trixie)$`).FindStringSubmatch(builder.image)
			if m == nil {
				return fmt.Errorf("builder image %q: want golang:<go.mod go version>-<debian release>, e.g. golang:%s-trixie", builder.image, goVersion)
			}
			return check(m[1] == goVersion, "builder image %q: Go %s, but go.mod says go %s (with GOTOOLCHAIN=local an older Go fails)", builder.image, m[1], goVersion)
		}},
		{"GOTOOLCHAIN=local", func() error {
			return check(slices.ContainsFunc(builder.instrs, func(in dockerInstr) bool {
				return in.cmd == "ENV" && regexp.MustCompile(`(^|\s)GOTOOLCHAIN[= ]local($|\s)`).MatchString(in.args)
			}) && !regexp.MustCompile(`GOTOOLCHAIN=(auto|go|path)`).MatchString(text),
				"the builder does not set GOTOOLCHAIN=local (a toolchain download would hide a wrong base image)")
		}},
		{"builder runs on the build platform", func() error {
			return check(builder.platform == "$BUILDPLATFORM" || builder.platform == "${BUILDPLATFORM}",
				"builder FROM --platform=%q, want $BUILDPLATFORM (cross-compile, no emulation)", builder.platform)
		}},
		{"final stage is the target platform", func() error {
			return check(final.platform == "", "final stage FROM --platform=%q: the image must be of the target platform", final.platform)
		}},
		{"target platform args declared", func() error {
			a := builder.args()
			return check(a["TARGETOS"] && a["TARGETARCH"] && a["TARGETVARIANT"],
				"builder stage lacks ARG TARGETOS, TARGETARCH and TARGETVARIANT: %v", a)
		}},
		{"go build for the target platform", func() error {
			if !hasBuild {
				return fmt.Errorf("no RUN ... go build in the builder stage")
			}
			for _, want := range []string{"GOOS=$TARGETOS", "GOARCH=$TARGETARCH", "CGO_ENABLED=0"} {
				if !strings.Contains(buildRun.args, want) {
					return fmt.Errorf("line %d: the go build RUN lacks %s", buildRun.line, want)
				}
			}
			return check(regexp.MustCompile(`GOARM="?\$\{TARGETVARIANT#v\}`).MatchString(buildRun.args),
				"line %d: GOARM is not taken from TARGETVARIANT (linux/arm/v7 needs GOARM=7)", buildRun.line)
		}},
		{"build cache mounts", func() error {
			if !hasBuild {
				return fmt.Errorf("no RUN ... go build in the builder stage")
			}
			for _, target := range []string{"/go/pkg/mod", "/root/.cache/go-build"} {
				if !strings.Contains(buildRun.args, "--mount=type=cache,target="+target) {
					return fmt.Errorf("line %d: the go build RUN lacks --mount=type=cache,target=%s", buildRun.line, target)
				}
			}
			return check(strings.HasPrefix(buildRun.args, "--mount="), "line %d: RUN flags must come first", buildRun.line)
		}},
		{"ldflags take VERSION and REVISION", func() error {
			return check(strings.Contains(buildRun.args, "-X "+versionPkg+".Version=${VERSION}") &&
				strings.Contains(buildRun.args, "-X "+versionPkg+".Revision=${REVISION}") &&
				builder.args()["VERSION"] && builder.args()["REVISION"],
				"the builder does not declare ARG VERSION and REVISION and pass them to -X %s.Version / .Revision", versionPkg)
		}},
		{"label args declared in the final stage", func() error {
			a := final.args()
			return check(a["VERSION"] && a["REVISION"], "final stage lacks ARG VERSION and ARG REVISION: its labels would be empty")
		}},
		{"label org.opencontainers.image.version", func() error {
			return check(labels["org.opencontainers.image.version"] == "${VERSION}", "version label = %q, want ${VERSION}", labels["org.opencontainers.image.version"])
		}},
		{"label org.opencontainers.image.revision", func() error {
			return check(labels["org.opencontainers.image.revision"] == "${REVISION}", "revision label = %q, want ${REVISION}", labels["org.opencontainers.image.revision"])
		}},
		{"label org.opencontainers.image.source", func() error {
			return check(labels["org.opencontainers.image.source"] == source, "source label = %q, want %s", labels["org.opencontainers.image.source"], source)
		}},
		{"label org.opencontainers.image.licenses", func() error {
			return check(labels["org.opencontainers.image.licenses"] == "Apache-2.0", "licenses label = %q, want Apache-2.0", labels["org.opencontainers.image.licenses"])
		}},
		{"label org.opencontainers.image.title", func() error {
			return check(labels["org.opencontainers.image.title"] == "yunxiao_exporter", "title label = %q", labels["org.opencontainers.image.title"])
		}},
		{"label org.opencontainers.image.description", func() error {
			return check(strings.Contains(labels["org.opencontainers.image.description"], "Prometheus exporter"), "description label = %q", labels["org.opencontainers.image.description"])
		}},
		{"final stage nonroot", func() error {
			var user string
			for _, in := range final.instrs {
				if in.cmd == "USER" {
					user = in.args
				}
			}
			return check(strings.HasPrefix(final.image, "gcr.io/distroless/") && strings.HasSuffix(final.image, ":nonroot") &&
				user == fmt.Sprintf("%d:%d", nonRootUID, nonRootUID),
				"final stage %s USER %q: want a distroless :nonroot base and USER %d:%d", final.image, user, nonRootUID, nonRootUID)
		}},
		{"LICENSE is Apache-2.0", func() error {
			b, err := os.ReadFile(repoPath(t, "LICENSE"))
			if err != nil {
				return err
			}
			return check(bytes.Contains(b, []byte("Apache License")) && bytes.Contains(b, []byte("Version 2.0, January 2004")) &&
				bytes.Contains(b, []byte("END OF TERMS AND CONDITIONS")), "LICENSE is not the Apache License 2.0 text")
		}},
		{"make docker passes VERSION and REVISION", func() error {
			_, recipe, _ := strings.Cut(makefile, "\ndocker:")
			if i := strings.Index(recipe, "\n\n"); i >= 0 {
				recipe = recipe[:i]
			}
			return check(strings.Contains(recipe, "--build-arg VERSION=$(VERSION)") && strings.Contains(recipe, "--build-arg REVISION=$(REVISION)"),
				"Makefile docker target does not pass --build-arg VERSION=$(VERSION) and REVISION=$(REVISION)")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.check(); err != nil {
				t.Error(err)
			}
		})
	}
}
