package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/promslog"
)

func TestGoKitThroughOneHandler(t *testing.T) {
	cases := []struct {
		name string
		log  func(log.Logger)
		want []string // substrings of the one line
	}{
		{"info with fields", func(l log.Logger) { level.Info(l).Log("msg", "hello", "n", 3) },
			[]string{"level=INFO", "source=logging_test.go:", `msg=hello`, "n=3"}},
		{"warn through With", func(l log.Logger) { level.Warn(log.With(l, "pipeline_id", 7)).Log("msg", "w") },
			[]string{"level=WARN", "source=logging_test.go:", "msg=w", "pipeline_id=7"}},
		{"error value as text", func(l log.Logger) { level.Error(l).Log("msg", "e", "err", errors.New("boom")) },
			[]string{"level=ERROR", "err=boom"}},
		{"no level is info", func(l log.Logger) { l.Log("msg", "plain") }, []string{"level=INFO", "msg=plain"}},
		{"odd key-values", func(l log.Logger) { level.Info(l).Log("msg", "odd", "dangling") },
			[]string{"msg=odd", `dangling=(MISSING)`}},
		{"a second msg stays a field", func(l log.Logger) { level.Info(l).Log("msg", "first", "msg", "second") },
			[]string{"msg=first", "msg=second"}},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		lvl := promslog.NewLevel()
		_ = lvl.Set("debug")
		tc.log(GoKit(promslog.New(&promslog.Config{Level: lvl, Writer: &buf}).Handler()))
		line := buf.String()
		if strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "time=") {
			t.Errorf("%s: want one line starting with time=, got %q", tc.name, line)
		}
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: %q lacks %q", tc.name, line, w)
			}
		}
	}
}

func TestLevelFilter(t *testing.T) {
	var buf bytes.Buffer
	lvl := promslog.NewLevel()
	_ = lvl.Set("warn")
	l := GoKit(promslog.New(&promslog.Config{Level: lvl, Writer: &buf}).Handler())
	level.Debug(l).Log("msg", "d")
	level.Info(l).Log("msg", "i")
	level.Warn(l).Log("msg", "w")
	if got := buf.String(); strings.Contains(got, "msg=d") || strings.Contains(got, "msg=i") || !strings.Contains(got, "msg=w") {
		t.Errorf("warn filter let through: %q", got)
	}
}
