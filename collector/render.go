package collector

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"
)

// snapshot is one pipeline's metrics as a scrape needs them: the text
// exposition of every series that does not move with the clock, rendered
// once when the pipeline's data changed, and the few that do (durations of
// active work) as a rendered prefix to which a scrape appends the value.
// It keeps no dto.Metric: Collect rebuilds the data model from state when a
// client wants another format. Never modified once published.
type snapshot struct {
	// text holds the exposition lines (no HELP/TYPE) of every family, one
	// after the other in one allocation; family f's are
	// text[at[f]:at[f+1]]. One buffer, not one per family, keeps the
	// per-pipeline overhead (slice headers, size-class rounding) small.
	text    []byte
	at      [numFamilies + 1]uint32
	dynamic []dynamicLine
	has     [numFamilies]bool // the family has lines here, static or dynamic
	status  PipelineStatus
	dropped int
	// frozenAt, when set, stops the clock for the dynamic lines (see built).
	frozenAt int64
	state    fetchState // what Collect rebuilds the data model from
}

// dynamicLine is a series whose value moves with the clock.
type dynamicLine struct {
	family family
	prefix []byte // `name{labels} `
	moving
}

// newSnapshot builds a pipeline's metrics and renders them.
func newSnapshot(st fetchState) *snapshot {
	b := build(st)
	s := &snapshot{status: b.status, dropped: b.dropped, frozenAt: b.frozenAt, state: st}
	dynamic := make(map[*dto.Metric]bool, len(b.dynamic))
	for _, d := range b.dynamic {
		dynamic[b.families[d.family][d.index]] = true
		s.dynamic = append(s.dynamic, dynamicLine{family: d.family, prefix: renderPrefix(d.family, d.labels), moving: d.moving})
		s.has[d.family] = true
	}
	var static []*dto.Metric
	scratch := scratchPool.Get().(*renderScratch)
	defer scratchPool.Put(scratch)
	text := &scratch.text
	text.Reset()
	for f := range numFamilies {
		s.at[f] = uint32(text.Len())
		static = static[:0]
		for _, m := range b.families[f] {
			if !dynamic[m] {
				static = append(static, m)
			}
		}
		if len(static) > 0 {
			appendLinesVia(text, &scratch.family, family(f), static)
			s.has[f] = true
		}
	}
	s.at[numFamilies] = uint32(text.Len())
	s.text = bytes.Clone(text.Bytes())
	return s
}

// lines returns family f's static exposition lines.
func (s *snapshot) lines(f family) []byte { return s.text[s.at[f]:s.at[f+1]] }

// renderScratch are the buffers a rendering writes through, pooled: a
// cold start renders thousands of pipelines, and growing fresh buffers for
// each was most of the garbage it made.
type renderScratch struct{ text, family bytes.Buffer }

var scratchPool = sync.Pool{New: func() any { return new(renderScratch) }}

// appendLinesVia writes family f's metrics to buf as exposition lines
// without the family's header, through client_golang's own text encoder
// (so escaping and number formatting are exactly the registry path's), with
// fam as scratch.
func appendLinesVia(buf, fam *bytes.Buffer, f family, metrics []*dto.Metric) {
	def := &metricDefs[f]
	fam.Reset()
	if _, err := expfmt.MetricFamilyToText(fam, &dto.MetricFamily{Name: &def.Name, Help: &def.Help, Type: def.Type.Enum(), Metric: metrics}); err != nil {
		// The builder only makes valid metrics; a failure here is a bug
		// that must not take the scrape down with it.
		return
	}
	out := fam.Bytes()
	for range 2 { // drop "# HELP …" and "# TYPE …"
		if i := bytes.IndexByte(out, '\n'); i >= 0 && bytes.HasPrefix(out, []byte("# ")) {
			out = out[i+1:]
		}
	}
	buf.Write(out)
}

// renderPrefix is `name{labels} ` for a gauge of family f.
func renderPrefix(f family, labels []*dto.LabelPair) []byte {
	var line, fam bytes.Buffer
	appendLinesVia(&line, &fam, f, []*dto.Metric{{Label: labels, Gauge: &dto.Gauge{Value: proto.Float64(0)}}})
	return bytes.TrimSuffix(line.Bytes(), []byte("0\n"))
}

// headers are each family's HELP and TYPE lines; familiesByName is the
// exposition's family order. Both are computed once and never modified.
var (
	headers        = familyHeaders()
	familiesByName = sortedFamilies()
)

func familyHeaders() [numFamilies][]byte {
	var h [numFamilies][]byte
	for f, def := range metricDefs {
		h[f] = header(def.Name, def.Help, def.Type)
	}
	return h
}

func header(name, help string, typ dto.MetricType) []byte {
	escaped := strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(help)
	return []byte("# HELP " + name + " " + escaped + "\n# TYPE " + name + " " + strings.ToLower(typ.String()) + "\n")
}

func sortedFamilies() []family {
	fs := make([]family, numFamilies)
	for f := range numFamilies {
		fs[f] = f
	}
	slices.SortFunc(fs, func(a, b family) int { return strings.Compare(metricDefs[a].Name, metricDefs[b].Name) })
	return fs
}

// appendFloat formats v as the text exposition does.
func appendFloat(dst []byte, v float64) []byte {
	switch {
	case v == 1:
		return append(dst, '1')
	case v == 0:
		return append(dst, '0')
	case v == -1:
		return append(dst, "-1"...)
	case math.IsNaN(v):
		return append(dst, "NaN"...)
	case math.IsInf(v, +1):
		return append(dst, "+Inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-Inf"...)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}
