// Command gen writes every file rendered from deploy/mixin's Default():
// the Prometheus rule file, the kustomize base's PrometheusRule, and the Helm
// chart's rule template and the generated block of its values.yaml. `make
// generate` runs it from the repository root:
//
//	go run ./deploy/mixin/gen
//
// With -check it writes nothing and exits 1, naming each file that is not up
// to date.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/mixin"
)

func main() {
	root := flag.String("root", ".", "repository root")
	check := flag.Bool("check", false, "only check that the files are up to date")
	flag.Parse()
	files, err := mixin.Generate(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	stale := false
	for _, f := range files {
		if f.UpToDate() {
			continue
		}
		if *check {
			fmt.Fprintf(os.Stderr, "gen: %s is out of date: run `make generate`\n", f.Path)
			stale = true
			continue
		}
		if err := os.WriteFile(f.Abs, f.Want, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", f.Path)
	}
	if stale {
		os.Exit(1)
	}
}
