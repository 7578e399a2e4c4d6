package config

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/yunxiao-exporter/yunxiao_exporter/yunxiao"
)

// TestMaxBodyBytesReachesClient: yunxiao.max_body_bytes is the client's
// cap on one answer. A run of more than 4 MiB (a job result of 5 MiB)
// fails as too_large with the default, and is read with the cap raised.
func TestMaxBodyBytesReachesClient(t *testing.T) {
	big := `{"pipelineRunId":7,"status":"SUCCESS","stages":[{"index":"Group0-Stage0","name":"Build","stageInfo":{"status":"SUCCESS",` +
		`"jobs":[{"id":1,"jobSign":"build","status":"SUCCESS","result":"` + strings.Repeat("x", 5<<20) + `"}]}}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(big))
	}))
	t.Cleanup(srv.Close)

	for _, c := range []struct {
		name    string
		setting string // line added to the yunxiao section
		reason  yunxiao.Reason
	}{
		{name: "default", reason: yunxiao.ReasonTooLarge},
		{name: "raised to 8 MiB", setting: "  max_body_bytes: 8388608\n"},
		{name: "set just below the answer", setting: "  max_body_bytes: 5242880\n", reason: yunxiao.ReasonTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			yml := "yunxiao:\n  endpoint: " + srv.URL + "\n  edition: region\n  token: " + inlineToken + "\n" + c.setting + "pipelines: [{id: 1}]\n"
			cfg, err := Load([]byte(yml), "x.yml", LoadOptions{Getenv: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			client, err := yunxiao.New(cfg.ClientOptions(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(client.Close)
			run, err := client.GetLatestPipelineRun(context.Background(), 1)
			if c.reason != "" {
				if got := yunxiao.ReasonOf(err); got != c.reason || run != nil {
					t.Fatalf("GetLatestPipelineRun = %v, %v; want reason %s", run, err, c.reason)
				}
				return
			}
			if err != nil || run == nil || run.PipelineRunID != 7 || len(run.Stages) != 1 {
				t.Fatalf("GetLatestPipelineRun = %+v, %v; want run 7", run, err)
			}
		})
	}
}
