// Package dashboards embeds the Grafana dashboards shipped in this directory
// and reads back the PromQL they run, so that tests can check the dashboards
// and run every query against a real Prometheus.
//
// The JSON files are the source: edit them (or export them from Grafana) and
// keep them provisionable as they are. This package only reads them.
package dashboards

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"
)

//go:embed *.json
var files embed.FS

// All returns the raw JSON of every dashboard, keyed by file name
// ("overview.json").
func All() (map[string][]byte, error) {
	names, err := fs.Glob(files, "*.json")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out[name] = b
	}
	return out, nil
}

// Dashboard is the part of a Grafana dashboard model this package reads.
type Dashboard struct {
	File          string  `json:"-"` // file name, e.g. "overview.json"
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []Panel `json:"panels"`
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Datasource is a panel's, target's or variable's data source reference.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Panel is a dashboard panel; a row keeps its collapsed panels in Panels.
type Panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Datasource  *Datasource `json:"datasource"`
	GridPos     *GridPos    `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []Target `json:"targets"`
	Panels  []Panel  `json:"panels"`
}

// GridPos is where a panel sits on the dashboard's 24-column grid.
type GridPos struct {
	X int `json:"x"`
	Y int `json:"y"`
	W int `json:"w"`
	H int `json:"h"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Instant    bool        `json:"instant"`
	Format     string      `json:"format"`
	Hide       bool        `json:"hide"`
	Datasource *Datasource `json:"datasource"`
}

// Variable is a template variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"` // a string, or an object with a "query" string
	Datasource *Datasource     `json:"datasource"`
	IncludeAll bool            `json:"includeAll"`
	AllValue   string          `json:"allValue"`
	Current    struct {
		Value json.RawMessage `json:"value"` // a string, or a list for multi-value variables
	} `json:"current"`
}

// QueryString returns the variable's query as text ("" when it has none).
func (v Variable) QueryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil {
		return o.Query
	}
	return ""
}

// Load parses every embedded dashboard, sorted by file name.
func Load() ([]Dashboard, error) {
	raw, err := All()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(raw))
	for name := range raw {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]Dashboard, 0, len(names))
	for _, name := range names {
		var d Dashboard
		if err := json.Unmarshal(raw[name], &d); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		d.File = name
		out = append(out, d)
	}
	return out, nil
}

// AllPanels returns the dashboard's panels, each row followed by the panels
// collapsed inside it.
func (d Dashboard) AllPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// Query is one PromQL expression a dashboard runs, with its variables
// substituted.
type Query struct {
	Dashboard string // dashboard uid
	Panel     string // panel title; "" for a template variable's query
	PanelID   int
	RefID     string // the target's refId; "" for a template variable's query
	Variable  string // the template variable's name, for a variable's query
	Label     string // for label_values(): the label whose values the variable lists
	Expr      string // PromQL, every $variable substituted
	Instant   bool   // the panel asks for an instant query (tables, most stats)
}

// builtins are the values Queries gives Grafana's own variables unless the
// caller's vars say otherwise.
var builtins = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "30s",
	"__interval_ms":   "30000",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
}

// Queries returns every PromQL expression of every dashboard: the queries of
// the template variables (label_values(expr, label) gives expr and label,
// query_result(expr) gives expr), then every visible panel target, panels in
// collapsed rows included.
//
// Each $name, ${name} or ${name:format} is replaced by vars[name]; when vars
// has no such key, by a default: $__rate_interval 1m, $__interval 30s,
// $__range 1h (and their _s/_ms forms); a custom, constant or textbox
// variable's current value; a query variable's allValue, or ".*" (every
// dashboard uses query variables with =~). Values are inserted verbatim, so
// pass regular expressions for variables used with =~. Queries fails when an
// expression names a variable it cannot resolve, or when a variable query is
// of a kind it does not know.
func Queries(vars map[string]string) ([]Query, error) {
	ds, err := Load()
	if err != nil {
		return nil, err
	}
	var out []Query
	for _, d := range ds {
		lookup := resolver(d, vars)
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			expr, label, err := parseVariableQuery(v.QueryString())
			if err != nil {
				return nil, fmt.Errorf("%s: variable %s: %w", d.UID, v.Name, err)
			}
			if expr, err = substitute(expr, lookup); err != nil {
				return nil, fmt.Errorf("%s: variable %s: %w", d.UID, v.Name, err)
			}
			out = append(out, Query{Dashboard: d.UID, Variable: v.Name, Label: label, Expr: expr, Instant: true})
		}
		for _, p := range d.AllPanels() {
			for _, t := range p.Targets {
				if t.Hide || strings.TrimSpace(t.Expr) == "" {
					continue
				}
				expr, err := substitute(t.Expr, lookup)
				if err != nil {
					return nil, fmt.Errorf("%s: panel %q refId %s: %w", d.UID, p.Title, t.RefID, err)
				}
				out = append(out, Query{Dashboard: d.UID, Panel: p.Title, PanelID: p.ID, RefID: t.RefID, Expr: expr, Instant: t.Instant})
			}
		}
	}
	return out, nil
}

var (
	labelValuesRe = regexp.MustCompile(`(?s)^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)$`)
	queryResultRe = regexp.MustCompile(`(?s)^query_result\((.+)\)$`)
	// $name, ${name}, ${name:format} and the deprecated [[name]].
	variableRe = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z0-9_]+)|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]`)
)

// parseVariableQuery turns a Prometheus variable query into a PromQL
// expression and, for label_values, the label it lists.
func parseVariableQuery(q string) (expr, label string, err error) {
	q = strings.TrimSpace(q)
	if m := labelValuesRe.FindStringSubmatch(q); m != nil {
		return strings.TrimSpace(m[1]), m[2], nil
	}
	if m := queryResultRe.FindStringSubmatch(q); m != nil {
		return strings.TrimSpace(m[1]), "", nil
	}
	return "", "", fmt.Errorf("unsupported variable query %q (want label_values(expr, label) or query_result(expr))", q)
}

// resolver returns the lookup for one dashboard's variables.
func resolver(d Dashboard, vars map[string]string) func(string) (string, bool) {
	defs := map[string]Variable{}
	for _, v := range d.Templating.List {
		defs[v.Name] = v
	}
	return func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		if v, ok := builtins[name]; ok {
			return v, true
		}
		v, ok := defs[name]
		if !ok {
			return "", false
		}
		switch v.Type {
		case "custom", "constant", "textbox", "interval":
			if cur := currentValue(v); cur != "" {
				return cur, true
			}
			return v.QueryString(), true
		case "query":
			if v.IncludeAll && v.AllValue != "" {
				return v.AllValue, true
			}
			return ".*", true
		case "datasource":
			return "prometheus", true
		}
		return "", false
	}
}

// currentValue returns a variable's current value, the first one of a list.
func currentValue(v Variable) string {
	var s string
	if json.Unmarshal(v.Current.Value, &s) == nil {
		return s
	}
	var l []string
	if json.Unmarshal(v.Current.Value, &l) == nil && len(l) > 0 {
		return l[0]
	}
	return ""
}

// substitute replaces every variable reference in expr. It fails on a name
// lookup cannot resolve and on a "$" that is no reference it knows (e.g.
// ${__data.fields.x}).
func substitute(expr string, lookup func(string) (string, bool)) (string, error) {
	if rest := variableRe.ReplaceAllString(expr, ""); strings.Contains(rest, "$") {
		return "", fmt.Errorf("a $ that is no variable reference in %q", expr)
	}
	var unknown []string
	out := variableRe.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRe.FindStringSubmatch(ref)
		name := m[1] + m[2] + m[3]
		v, ok := lookup(name)
		if !ok {
			unknown = append(unknown, ref)
			return ref
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown variable(s) %s in %q", strings.Join(unknown, ", "), expr)
	}
	return out, nil
}
