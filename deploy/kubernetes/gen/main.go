// Command gen writes the kustomize base's PrometheusRule from the Prometheus
// rule file, so both always hold the same alerts. `make generate` runs it from
// the repository root:
//
//	go run ./deploy/kubernetes/gen -alerts deploy/prometheus/alerts.yml -out deploy/kubernetes/base/prometheusrule.yaml
//
// With -check it writes nothing and exits 1 when -out is not up to date.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/internal/rulegen"
)

func main() {
	alerts := flag.String("alerts", "deploy/prometheus/alerts.yml", "Prometheus rule file to read")
	out := flag.String("out", "deploy/kubernetes/base/prometheusrule.yaml", "PrometheusRule manifest to write")
	name := flag.String("name", "yunxiao-exporter", "metadata.name of the PrometheusRule")
	check := flag.Bool("check", false, "only check that -out is up to date")
	flag.Parse()

	if err := run(*alerts, *out, *name, *check); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(alertsPath, outPath, name string, check bool) error {
	rules, err := os.ReadFile(alertsPath)
	if err != nil {
		return err
	}
	want, err := rulegen.PrometheusRule(rules, name)
	if err != nil {
		return fmt.Errorf("%s: %w", alertsPath, err)
	}
	if check {
		got, err := os.ReadFile(outPath)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%s is out of date with %s: run `make generate`", outPath, alertsPath)
		}
		return nil
	}
	return os.WriteFile(outPath, want, 0o644)
}
