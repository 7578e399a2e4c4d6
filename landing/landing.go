// Package landing renders the exporter's front page: links to its
// endpoints and a live table of the pipelines it watches, server-rendered
// with html/template (escaped by construction, no JavaScript).
package landing

import (
	"context"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/yunxiao-exporter/yunxiao_exporter/collector"
)

//go:embed page.html
var files embed.FS

// Source is what the page shows: the collector.
type Source interface {
	Refresh(ctx context.Context)
	Pipelines() []collector.PipelineStatus
}

// Config configures the page.
type Config struct {
	Version     string
	MetricsPath string
	Now         func() time.Time // default time.Now
	// RefreshTimeout bounds how long opening the page waits for stale
	// pipelines (it shares the collector's cache, so it costs no more API
	// calls than a scrape). Default 5s.
	RefreshTimeout time.Duration
}

// Handler serves the landing page.
type Handler struct {
	cfg  Config
	src  Source
	tmpl *template.Template
}

// New returns the landing page handler.
func New(src Source, cfg Config) (*Handler, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RefreshTimeout <= 0 {
		cfg.RefreshTimeout = 5 * time.Second
	}
	tmpl, err := template.ParseFS(files, "page.html")
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, src: src, tmpl: tmpl}, nil
}

// Row is one pipeline as the page shows it.
type Row struct {
	ID          int64
	Name        string
	Status      string
	StatusClass string // success, fail, running, waiting, canceled, other, none
	Trigger     string
	Started     string
	StartedISO  string
	Duration    string
	LastSuccess string
	LastError   string
	Up          bool
	Fetched     bool
}

type page struct {
	Version     string
	MetricsPath string
	Generated   string
	Rows        []Row
	Total       int
	Failed      int
	Running     int
	Unhealthy   int
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.RefreshTimeout)
	h.src.Refresh(ctx)
	cancel()
	now := h.cfg.Now()
	p := page{Version: h.cfg.Version, MetricsPath: h.cfg.MetricsPath, Generated: now.UTC().Format("2006-01-02 15:04:05 UTC")}
	for _, s := range h.src.Pipelines() {
		row := rowOf(s, now)
		p.Rows = append(p.Rows, row)
		switch row.StatusClass {
		case "fail":
			p.Failed++
		case "running", "waiting":
			p.Running++
		}
		if row.Fetched && !row.Up {
			p.Unhealthy++
		}
	}
	sort.SliceStable(p.Rows, func(i, j int) bool {
		if p.Rows[i].Name != p.Rows[j].Name {
			return p.Rows[i].Name < p.Rows[j].Name
		}
		return p.Rows[i].ID < p.Rows[j].ID
	})
	p.Total = len(p.Rows)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if err := h.tmpl.Execute(w, p); err != nil {
		http.Error(w, "rendering the page failed", http.StatusInternalServerError)
	}
}

func rowOf(s collector.PipelineStatus, now time.Time) Row {
	row := Row{ID: s.ID, Name: s.Name, Status: s.Status, Trigger: s.TriggerMode, Up: s.Up,
		Fetched: !s.LastSuccess.IsZero() || s.LastError != "", LastError: s.LastError}
	row.StatusClass = statusClass(s)
	if !s.Start.IsZero() {
		row.Started = s.Start.UTC().Format("2006-01-02 15:04 UTC") + " (" + ago(now.Sub(s.Start)) + ")"
		row.StartedISO = s.Start.UTC().Format(time.RFC3339)
	}
	if d, ok := s.Duration(now); ok {
		row.Duration = human(d)
	}
	if !s.LastSuccess.IsZero() {
		row.LastSuccess = ago(now.Sub(s.LastSuccess))
	}
	return row
}

func statusClass(s collector.PipelineStatus) string {
	if !s.HasRun {
		return "none"
	}
	switch strings.ToUpper(s.Status) {
	case "SUCCESS", "FINISH", "FINISHED":
		return "success"
	case "FAIL", "FAILED":
		return "fail"
	case "RUNNING", "CANCELLING", "QUEUED", "PENDING", "INIT":
		return "running"
	case "WAITING":
		return "waiting"
	case "CANCELED", "CANCELLED", "SKIP", "SKIPPED":
		return "canceled"
	}
	return "other"
}

func ago(d time.Duration) string {
	if d < 0 {
		return "in the future"
	}
	return human(d) + " ago"
}

// human prints a duration at a precision people read: 45s, 3m 20s, 2h 5m, 3d 4h.
func human(d time.Duration) string {
	secs := int64(d.Round(time.Second) / time.Second)
	switch {
	case secs < 60:
		return fmt.Sprintf("%ds", secs)
	case secs < 3600:
		return pair(secs/60, "m", secs%60, "s")
	case secs < 48*3600:
		return pair(secs/3600, "h", secs%3600/60, "m")
	}
	return pair(secs/86400, "d", secs%86400/3600, "h")
}

func pair(major int64, majorUnit string, minor int64, minorUnit string) string {
	if minor == 0 {
		return fmt.Sprintf("%d%s", major, majorUnit)
	}
	return fmt.Sprintf("%d%s %d%s", major, majorUnit, minor, minorUnit)
}
