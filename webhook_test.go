package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/flowsim"
)

const webhookSecret = "flow-webhook-secret-0123456789"

// flowEvent is what Flow's webhook plugin posts when a job's status changes.
func flowEvent(pipelineID int64, status string) string {
	return fmt.Sprintf(`{"event":"task","action":"status","task":{"pipelineId":%d,"pipelineName":"x","stageName":"构建","taskName":"Build","buildNumber":7,"statusCode":%q,"statusName":"运行失败","pipelineUrl":"https://flow.example/p","message":"m"},"sources":[{"repo":"r","branch":"main","commitId":"abc"}],"globalParams":[{"key":"PASSWORD","value":"never-read-0451"}]}`, pipelineID, status)
}

// TestWebhookEndToEnd (issue 12): with cache_ttl at 10 minutes, a run
// that fails plus Flow's event reaches /metrics at once; a burst of events
// costs at most two fetches; events for unwatched pipelines cost none; the
// payload itself is never the data.
func TestWebhookEndToEnd(t *testing.T) {
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1"}, flowsim.DemoPipelines()...)
	body := func(status string, id int) []byte {
		return fmt.Appendf(nil, `{"pipelineId":1001,"pipelineRunId":%d,"status":%q,"triggerMode":3,"createTime":1795690800000,"updateTime":1795691100000,"stages":[]}`, id, status)
	}
	sim.PinJSON(flowsim.EndpointLatestRun, 1001, body("SUCCESS", 501))
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "token"), []byte(testToken))
	writeTestFile(t, filepath.Join(dir, "webhook-token"), []byte(webhookSecret+"\n"))
	cfgPath := filepath.Join(dir, "config.yml")
	cfg := fmt.Sprintf("yunxiao:\n  endpoint: %s\n  organization_id: org-1\n  token_file: token\ncache_ttl: 10m\nwebhook:\n  token_file: webhook-token\npipelines:\n  - id: 1001\n    name: backend-build\n  - id: 1002\n    name: frontend-build\n", api.URL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startExporter(t, "--config.file="+cfgPath)
	if _, m := e.get("/metrics"); !strings.Contains(m, `yunxiao_pipeline_run_status{pipeline_id="1001",pipeline_name="backend-build",status="SUCCESS"} 1`) {
		t.Fatalf("first scrape:\n%s", grep(m, "run_status"))
	}
	post := func(query, payload string) int {
		t.Helper()
		resp, err := http.Post(e.base+"/webhook/flow?"+query, "application/json", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor := func(what string, bound time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > bound {
				t.Fatalf("%s: not within %s", what, bound)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}

	// A run fails; Flow says so. Polling alone would see it in 10 minutes.
	sim.PinJSON(flowsim.EndpointLatestRun, 1001, body("FAIL", 502))
	before := sim.Requests(flowsim.EndpointLatestRun)
	if code := post("token="+webhookSecret, flowEvent(1001, "FAIL")); code != http.StatusAccepted {
		t.Fatalf("event: %d", code)
	}
	took := waitFor("the failed run in /metrics", 5*time.Second, func() bool {
		_, m := e.get("/metrics")
		return strings.Contains(m, `yunxiao_pipeline_run_status{pipeline_id="1001",pipeline_name="backend-build",status="FAIL"} 1`)
	})
	t.Logf("event to /metrics: %s", took)

	// A burst: 100 events within a second for another pipeline, whose
	// coalescing window no earlier event has opened.
	waitFor("the first refresh to end", 5*time.Second, func() bool { return sim.Requests(flowsim.EndpointLatestRun) == before+1 })
	// Only 1002 is fetched from here on (1001 waits out its 10 m TTL), so
	// GetLatestPipelineRun requests are 1002's fetches.
	burstBefore := sim.Requests(flowsim.EndpointLatestRun)
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			post("token="+webhookSecret, flowEvent(1002, "RUNNING"))
		}()
	}
	wg.Wait()
	waitFor("the trailing refresh", 5*time.Second, func() bool { return sim.Requests(flowsim.EndpointLatestRun) >= burstBefore+2 })
	time.Sleep(2500 * time.Millisecond) // observe a window more: nothing else may come
	if n := sim.Requests(flowsim.EndpointLatestRun) - burstBefore; n > 2 {
		t.Errorf("100 events caused %d fetches, want at most 2", n)
	}

	// Unwatched pipelines and bad requests cost no fetch.
	before = sim.Requests(flowsim.EndpointLatestRun) + sim.Requests(flowsim.EndpointPipeline)
	for _, c := range []struct {
		query, payload string
		want           int
	}{
		{"token=" + webhookSecret, flowEvent(424242, "FAIL"), http.StatusAccepted},
		{"token=wrong-secret-0123456789", flowEvent(1001, "FAIL"), http.StatusUnauthorized},
		{"", flowEvent(1001, "FAIL"), http.StatusUnauthorized},
		{"token=" + webhookSecret, `{"event":"task","task":{}}`, http.StatusBadRequest},
		{"token=" + webhookSecret, strings.Repeat(" ", 1<<20+1), http.StatusRequestEntityTooLarge},
	} {
		if code := post(c.query, c.payload); code != c.want {
			t.Errorf("%.40q: %d, want %d", c.payload, code, c.want)
		}
	}
	waitFor("the unwatched event counted", 5*time.Second, func() bool {
		_, m := e.get("/metrics")
		return strings.Contains(m, `yunxiao_webhook_events_total{result="unwatched"} 1`)
	})
	if n := sim.Requests(flowsim.EndpointLatestRun) + sim.Requests(flowsim.EndpointPipeline) - before; n != 0 {
		t.Errorf("unwatched or refused events caused %d API requests", n)
	}
	_, m := e.get("/metrics")
	for _, want := range []string{"yunxiao_webhook_enabled 1", `yunxiao_webhook_events_total{result="accepted"} 102`,
		`yunxiao_webhook_events_total{result="unauthorized"} 2`, `yunxiao_webhook_events_total{result="bad_request"} 1`,
		`yunxiao_webhook_events_total{result="too_large"} 1`, "yunxiao_webhook_last_accepted_timestamp_seconds "} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grep(m, "yunxiao_webhook"))
		}
	}
	if logs := e.stderr.String(); strings.Contains(logs, webhookSecret) || strings.Contains(m, webhookSecret) || strings.Contains(logs, "never-read-0451") {
		t.Error("the webhook secret or a run parameter reached the logs or the metrics")
	}
}

// TestWebhookOwnListener: --webhook.listen-address serves the webhook, and
// only the webhook, on its own port; the main one no longer has it.
func TestWebhookOwnListener(t *testing.T) {
	sim := flowsim.New(flowsim.Options{Token: testToken, OrganizationID: "org-1"}, flowsim.DemoPipelines()...)
	api := httptest.NewServer(sim)
	t.Cleanup(api.Close)
	dir := t.TempDir()
	writeTestFile(t, filepath.Join(dir, "token"), []byte(testToken))
	cfgPath := filepath.Join(dir, "config.yml")
	cfg := fmt.Sprintf("yunxiao:\n  endpoint: %s\n  organization_id: org-1\n  token_file: token\nwebhook:\n  token: %s\npipelines:\n  - id: 1001\n", api.URL, webhookSecret)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ln := freeAddr(t)
	e := startExporter(t, "--config.file="+cfgPath, "--webhook.listen-address="+ln)
	if code, _ := e.do(http.MethodPost, "/webhook/flow?token="+webhookSecret); code != http.StatusNotFound {
		t.Errorf("main listener still serves the webhook: %d", code)
	}
	var resp *http.Response
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		resp, err = http.Post("http://"+ln+"/webhook/flow?token="+webhookSecret, "application/json", strings.NewReader(flowEvent(1001, "FAIL")))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook listener: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("webhook listener: %d", resp.StatusCode)
	}
	for _, path := range []string{"/metrics", "/", "/-/reload"} {
		r, err := http.Get("http://" + ln + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("webhook listener serves %s: %d", path, r.StatusCode)
		}
	}
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
