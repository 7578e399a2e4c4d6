package landing

import (
	"context"
	"flag"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"

	"github.com/yunxiao-exporter/yunxiao_exporter/collector"
	"github.com/yunxiao-exporter/yunxiao_exporter/config"
	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

var updateScreenshot = flag.Bool("update", false, "rewrite docs/landing-page.png from the Chromium test")

var now = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

type fakeSource struct {
	pipelines []collector.PipelineStatus
	refreshed int
}

func (f *fakeSource) Refresh(context.Context)               { f.refreshed++ }
func (f *fakeSource) Pipelines() []collector.PipelineStatus { return f.pipelines }

func render(t *testing.T, src Source) string {
	t.Helper()
	h, err := New(src, Config{Version: "1.2.3", MetricsPath: "/metrics", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	return rec.Body.String()
}

func TestRows(t *testing.T) {
	src := &fakeSource{pipelines: []collector.PipelineStatus{
		{ID: 1, Name: "backend-build", Up: true, HasRun: true, RunID: 9, Status: "SUCCESS", TriggerMode: "push",
			Start: now.Add(-time.Hour), End: now.Add(-55 * time.Minute), LastSuccess: now.Add(-10 * time.Second)},
		{ID: 2, Name: `<script>alert("x")</script>`, Up: false, HasRun: true, Status: "FAIL", TriggerMode: "manual",
			Start: now.Add(-2 * time.Hour), End: now.Add(-90 * time.Minute), LastSuccess: now.Add(-20 * time.Minute),
			LastError: `GetLatestPipelineRun: HTTP 502: HTML page "<b>Bad Gateway</b>"`},
		{ID: 3, Name: "移动端构建", Up: true, HasRun: false, LastSuccess: now},
		{ID: 4, Name: "", Up: false},
	}}
	page := render(t, src)
	if src.refreshed != 1 {
		t.Errorf("opening the page refreshed %d times, want 1", src.refreshed)
	}
	for _, want := range []string{
		`<tr data-pipeline-id="1" data-status="success">`,
		`<span class="badge success">SUCCESS</span>`,
		`<time datetime="2026-11-26T11:00:00Z">2026-11-26 11:00 UTC (1h ago)</time>`,
		`<td class="num">5m</td>`,
		`<td class="num">10s ago</td>`,
		`<tr data-pipeline-id="2" data-status="fail" class="stale">`,
		`&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;`,
		`HTML page &#34;&lt;b&gt;Bad Gateway&lt;/b&gt;&#34;`,
		`<td>移动端构建</td>`,
		`<span class="badge none">never ran</span>`,
		`<span class="badge none">not fetched yet</span>`,
		`<i>(name unknown)</i>`,
		`<a href="/metrics">Metrics</a>`, `<a href="/-/healthy">`, `<a href="/-/ready">`,
		`<b>4</b><span>pipelines watched</span>`, `<b>1</b><span>latest run failed</span>`, `<b>1</b><span>fetch failing</span>`,
		"1.2.3",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "<b>Bad") {
		t.Error("outside text reached the page unescaped")
	}
}

func TestHuman(t *testing.T) {
	cases := map[time.Duration]string{
		0: "0s", 45 * time.Second: "45s", 3*time.Minute + 20*time.Second: "3m 20s", time.Hour: "1h",
		2*time.Hour + 5*time.Minute: "2h 5m", 50 * time.Hour: "2d 2h", 1500 * time.Millisecond: "2s",
	}
	for d, want := range cases {
		if got := human(d); got != want {
			t.Errorf("human(%s) = %q, want %q", d, got, want)
		}
	}
}

func TestOnlyRoot(t *testing.T) {
	h, err := New(&fakeSource{}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/nope", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("/nope: %d, want 404", rec.Code)
	}
}

// TestChromium loads the page, served from the demo pipelines at a fixed
// time with one pipeline's API failing, in headless Chromium, and checks
// what a person sees: every row, and the status colours in the pixels.
func TestChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed; .ci/run must install it")
		}
		t.Skip("chromium not on PATH (apt-get install chromium); skipping the browser test")
	}
	const token = "pt-landing-test-token"
	var mu sync.Mutex
	at := now
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return at }
	sim := flowsim.New(flowsim.Options{Token: token, OrganizationID: "org", Now: clock}, flowsim.DemoPipelines()...)
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	var yml strings.Builder
	yml.WriteString("yunxiao:\n  endpoint: " + api.URL + "\n  organization_id: org\n  token: " + token + "\npipelines:\n")
	for _, p := range flowsim.DemoPipelines() {
		yml.WriteString("  - id: " + itoa(p.ID) + "\n")
	}
	cfg, err := config.Load([]byte(yml.String()), "test.yml", config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	coll := collector.New(collector.Options{Now: clock, Logger: log.NewNopLogger()})
	t.Cleanup(coll.Close)
	opts := cfg.ClientOptions()
	opts.RetryBackoff = time.Millisecond
	client, err := yunxiao.New(opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := coll.SetAPI(client, cfg); err != nil {
		t.Fatal(err)
	}
	h, err := New(coll, Config{Version: "0.1.0", MetricsPath: "/metrics", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	page := httptest.NewServer(h)
	t.Cleanup(page.Close)
	// Everything fetched fine once; then pipeline 1001's API breaks.
	coll.Refresh(context.Background())
	mu.Lock()
	at = at.Add(time.Minute)
	mu.Unlock()
	sim.Fault(1001, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html><title>502 Bad Gateway</title></html>"))
	})

	dir := t.TempDir()
	shot := filepath.Join(dir, "landing.png")
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + filepath.Join(dir, "profile"), "--window-size=1280,760"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dom, err := exec.CommandContext(ctx, browser, append(args, "--dump-dom", page.URL+"/")...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	for _, p := range flowsim.DemoPipelines() {
		if !strings.Contains(string(dom), `data-pipeline-id="`+itoa(p.ID)+`"`) {
			t.Errorf("the rendered page has no row for %s (%d)", p.Name, p.ID)
		}
	}
	for _, want := range []string{"移动端构建", `class="stale"`, "502 Bad Gateway", "never ran"} {
		if !strings.Contains(string(dom), want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if strings.Contains(string(dom), token) {
		t.Error("the token reached the page")
	}

	if out, err := exec.CommandContext(ctx, browser, append(args, "--screenshot="+shot, page.URL+"/")...).CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	img := decodePNG(t, shot)
	for name, c := range map[string]color.RGBA{
		"SUCCESS green": {0x1a, 0x7f, 0x37, 0xff}, "FAIL red": {0xcf, 0x22, 0x2e, 0xff}, "RUNNING blue": {0x09, 0x69, 0xda, 0xff},
		"WAITING amber": {0xbf, 0x87, 0x00, 0xff}, "stale row yellow": {0xff, 0xf8, 0xc5, 0xff},
		"header orange": {0xe6, 0x52, 0x2c, 0xff},
	} {
		if n := countPixels(img, c); n < 50 {
			t.Errorf("%s: %d pixels of %v in the screenshot, want a badge's worth", name, n, c)
		}
	}
	if *updateScreenshot {
		data, err := os.ReadFile(shot)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("..", "docs", "landing-page.png"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func decodePNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// countPixels counts pixels within a small distance of c (font and badge
// edges are antialiased; badge interiors are exact).
func countPixels(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r>>8, c.R) && near(g>>8, c.G) && near(bl>>8, c.B) {
				n++
			}
		}
	}
	return n
}

func near(a uint32, b uint8) bool {
	d := int(a) - int(b)
	return d >= -3 && d <= 3
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
