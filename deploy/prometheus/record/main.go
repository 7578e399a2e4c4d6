// Command record writes deploy/prometheus/alerts_test.yml, the promtool
// unit tests of the alerting rules, with input series recorded from the
// real exporter rather than written by hand.
//
// Each scenario (scenarios*.go) is a script on a fake clock: exporters
// (the collector, the yunxiao client, the config and discovery metrics and
// the webhook receiver, served by the collector's /metrics handler, as
// main.go wires them) are started, restarted, removed, made unreachable,
// reloaded or sent Flow webhook events, the simulated Flow API runs the
// scenario's pipelines and faults, and every target is scraped once a
// minute. The recorder stores what Prometheus would store,
// staleness markers and up included, and writes it in promtool's notation
// beside the scenario's alert expectations.
//
//	go run ./deploy/prometheus/record          # rewrite the file
//	go run ./deploy/prometheus/record -check   # exit 1 if it is out of date
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// OutputFile is the generated file, relative to the repository root.
const OutputFile = "deploy/prometheus/alerts_test.yml"

func main() {
	check := flag.Bool("check", false, "do not write: exit 1 if "+OutputFile+" differs from what the scenarios record")
	out := flag.String("o", "", "output file (default: "+OutputFile+" in the repository)")
	flag.Parse()
	if err := run(*check, *out); err != nil {
		fmt.Fprintln(os.Stderr, "record:", err)
		os.Exit(1)
	}
}

func run(check bool, out string) error {
	if out == "" {
		root, err := repoRoot()
		if err != nil {
			return err
		}
		out = filepath.Join(root, filepath.FromSlash(OutputFile))
	}
	start := time.Now()
	data, err := Generate()
	if err != nil {
		return err
	}
	old, _ := os.ReadFile(out)
	if check {
		if !bytes.Equal(old, data) {
			return fmt.Errorf("%s is out of date: run go run ./deploy/prometheus/record", out)
		}
		return nil
	}
	if bytes.Equal(old, data) {
		fmt.Printf("%s is up to date (%d scenarios, recorded in %s)\n", out, len(Scenarios()), time.Since(start).Round(time.Millisecond))
		return nil
	}
	fmt.Printf("wrote %s (%d scenarios, recorded in %s)\n", out, len(Scenarios()), time.Since(start).Round(time.Millisecond))
	return os.WriteFile(out, data, 0o644)
}

// repoRoot is the directory of the go.mod above the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// recording is what one scenario recorded, series in output order.
type recording struct {
	series []*series
}

// Record plays one scenario.
func Record(sc Scenario) (*recording, error) {
	r, err := newRecorder(sc.Origin)
	if err != nil {
		return nil, err
	}
	defer r.close()
	sc.Script(r)
	if r.err != nil {
		return nil, fmt.Errorf("%s: %w", sc.Name, r.err)
	}
	var last time.Duration
	for _, c := range sc.Expect {
		last = max(last, c.At)
	}
	if steps := time.Duration(r.step) * Step; steps <= last {
		return nil, fmt.Errorf("%s: recorded %d minutes, but a case is at minute %d", sc.Name, r.step, int(last/Step))
	}
	rec := &recording{}
	for _, s := range r.series {
		rec.series = append(rec.series, s)
	}
	sort.Slice(rec.series, func(i, j int) bool {
		a, b := rec.series[i], rec.series[j]
		if a.target != b.target {
			return a.target < b.target
		}
		if (a.name == "up") != (b.name == "up") {
			return a.name == "up"
		}
		if a.name != b.name {
			return a.name < b.name
		}
		return a.String() < b.String()
	})
	return rec, nil
}

// Generate records every scenario and renders the file.
func Generate() ([]byte, error) {
	scs := Scenarios()
	recs := make([]*recording, len(scs))
	errs := make([]error, len(scs))
	var wg sync.WaitGroup
	for i, sc := range scs {
		wg.Go(func() { recs[i], errs[i] = Record(sc) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString(header)
	names := map[string]bool{}
	for i, sc := range scs {
		if names[sc.Name] {
			return nil, fmt.Errorf("two scenarios named %q", sc.Name)
		}
		names[sc.Name] = true
		if i > 0 {
			b.WriteString("\n")
		}
		if err := renderGroup(&b, sc, recs[i]); err != nil {
			return nil, err
		}
	}
	return []byte(b.String()), nil
}
