package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

// BenchmarkExporterRSS runs the real binary against a simulated API of
// 1,000 and 10,000 pipelines of 4 stages × 2 jobs (a quarter running),
// scrapes it warm a few times with gzip as Prometheus does, and reports
// the process's peak resident set (VmHWM) in all and per pipeline. The
// simulator runs in the benchmark's process, so none of its memory counts.
// Issue 13's targets: under 64 MiB at 1,000; at most 20 KiB per pipeline at
// 10,000.
func BenchmarkExporterRSS(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "yunxiao_exporter")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("pipelines=%d", n), func(b *testing.B) {
			for range b.N {
				hwm := measureRSS(b, bin, n)
				b.ReportMetric(float64(hwm)/(1<<20), "peak-MiB")
				b.ReportMetric(float64(hwm)/float64(n)/1024, "peak-KiB/pipeline")
			}
		})
	}
}

func measureRSS(b *testing.B, bin string, n int) int64 {
	b.Helper()
	var yml strings.Builder
	fleet := make([]flowsim.Pipeline, n)
	for i := range fleet {
		stages := make([]flowsim.Stage, 4)
		for s := range stages {
			stages[s] = flowsim.Stage{Name: fmt.Sprintf("Stage %d", s), Jobs: []flowsim.Job{
				{Sign: fmt.Sprintf("job-%d-a", s), Name: fmt.Sprintf("Job %d A", s), Duration: time.Minute},
				{Sign: fmt.Sprintf("job-%d-b", s), Name: fmt.Sprintf("Job %d B", s), Duration: 2 * time.Minute},
			}}
		}
		outcome := []flowsim.Outcome{flowsim.Success, flowsim.Fail, flowsim.Success, flowsim.Stuck}[i%4]
		fleet[i] = flowsim.Pipeline{ID: int64(100000 + i), Name: fmt.Sprintf("service-%05d-build", i), TriggerMode: 3,
			Period: time.Hour, Phase: 30 * time.Minute, Stages: stages, Outcomes: []flowsim.Outcome{outcome}}
		fmt.Fprintf(&yml, "  - id: %d\n    name: service-%05d-build\n", fleet[i].ID, i)
	}
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1"}, fleet...)
	api := httptest.NewServer(sim)
	defer api.Close()
	dir := b.TempDir()
	cfgPath := filepath.Join(dir, "config.yml")
	cfg := fmt.Sprintf("yunxiao:\n  endpoint: %s\n  organization_id: org-1\n  token: %s\n  rate_limit: 0\n  max_concurrency: 16\ncache_ttl: 10m\npipelines:\n%s", api.URL, testToken, yml.String())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	addr := freeAddrB(b)
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--web.listen-address="+addr, "--log.level=error")
	cmd.Stderr = io.Discard
	cmd.Env = append(os.Environ(), os.Getenv("RSS_ENV"))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 2 * time.Minute}
	scrape := func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		req.Header.Set(collectorTimeoutHeader, "120")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("the exporter did not become ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for range 5 { // the first is cold (fetches everything), the rest warm
		scrape()
	}
	return vmHWM(b, cmd.Process.Pid)
}

const collectorTimeoutHeader = "X-Prometheus-Scrape-Timeout-Seconds"

// vmHWM is a process's peak resident set size, in bytes.
func vmHWM(b *testing.B, pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

func freeAddrB(b *testing.B) string {
	b.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	return addr
}
