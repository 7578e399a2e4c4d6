package mixin

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/yunxiao-exporter/yunxiao_exporter/deploy/internal/rulegen"
)

// The files Generate renders, relative to the repository root.
const (
	AlertsFile        = "deploy/prometheus/alerts.yml"
	KustomizeRuleFile = "deploy/kubernetes/base/prometheusrule.yaml"
	HelmTemplateFile  = "deploy/helm/yunxiao-exporter/templates/prometheusrule.yaml"
	HelmValuesFile    = "deploy/helm/yunxiao-exporter/values.yaml"
	KustomizeRuleName = "yunxiao-exporter"
)

// File is one generated file: what is on disk and what the generator wants.
type File struct {
	Path string // relative to the repository root, slash-separated
	Abs  string
	Got  []byte // nil when missing
	Want []byte
}

// UpToDate reports whether the file on disk is what the generator wants.
func (f File) UpToDate() bool { return f.Got != nil && bytes.Equal(f.Got, f.Want) }

// Generate renders every file derived from Default() for the repository at
// root, and reads what is on disk now.
func Generate(root string) ([]File, error) {
	c := Default()
	alerts, err := Rules(c)
	if err != nil {
		return nil, err
	}
	kube, err := rulegen.PrometheusRule(alerts, KustomizeRuleName)
	if err != nil {
		return nil, err
	}
	helm, err := HelmTemplate()
	if err != nil {
		return nil, err
	}
	files := []File{
		{Path: AlertsFile, Want: alerts},
		{Path: KustomizeRuleFile, Want: kube},
		{Path: HelmTemplateFile, Want: helm},
		{Path: HelmValuesFile},
	}
	for i := range files {
		f := &files[i]
		f.Abs = filepath.Join(root, filepath.FromSlash(f.Path))
		got, err := os.ReadFile(f.Abs)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			f.Got = got
		}
	}
	// The values file is generated in part: its block between the markers.
	vals := &files[3]
	if vals.Got == nil {
		return nil, errors.New(HelmValuesFile + " is missing")
	}
	block, err := HelmValues(c)
	if err != nil {
		return nil, err
	}
	if vals.Want, err = ReplaceHelmValues(vals.Got, block); err != nil {
		return nil, err
	}
	return files, nil
}
