package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// LoadOptions carry what Load reads from outside the file.
type LoadOptions struct {
	// Getenv looks up YUNXIAO_TOKEN; nil means os.Getenv.
	Getenv func(string) string
}

// LoadFile reads, parses, validates and resolves a config file. Every error
// names the file, and where it can, the line and key.
func LoadFile(path string, opts LoadOptions) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, unwrapPathError(err))
	}
	return Load(data, path, opts)
}

// Load parses data as the config file named path (for messages and for
// resolving relative file names).
func Load(data []byte, path string, opts LoadOptions) (*Config, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(path, err)
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: the file is empty", path)
	}
	idx := indexKeys(&root, reflect.TypeFor[Config]())

	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, formatYAMLError(path, err, idx)
	}
	cfg.SourceFile = path
	cfg.indexPipelines()
	errs := cfg.validate()
	errs = append(errs, cfg.validateLabelUnion(idx.lineOf)...)
	errs = append(errs, cfg.resolve(filepath.Dir(path), opts)...)
	if len(errs) > 0 {
		return nil, formatFieldErrors(path, errs, idx)
	}
	return &cfg, nil
}

// resolve reads the token and builds the TLS config.
func (c *Config) resolve(dir string, opts LoadOptions) []fieldError {
	var errs []fieldError
	y := &c.Yunxiao
	var source string // the key the token came from, for messages
	switch {
	case y.TokenFile != "":
		source = "yunxiao.token_file"
		file := commoncfg.JoinDir(dir, y.TokenFile)
		data, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fileError(source, file, err))
			break
		}
		c.token = strings.TrimSpace(string(data))
		if c.token == "" {
			errs = append(errs, fieldError{source, file + " is empty"})
		}
		c.warnIfReadableByOthers(file, source)
	case y.Token != "":
		source = "yunxiao.token"
		c.token = strings.TrimSpace(string(y.Token))
		if c.SourceFile != "" {
			c.warnIfReadableByOthers(c.SourceFile, "the config file, which holds yunxiao.token inline,")
		}
	default:
		source = "yunxiao"
		c.token = strings.TrimSpace(opts.Getenv(TokenEnv))
		if c.token == "" {
			errs = append(errs, fieldError{source, "no token: set yunxiao.token_file, yunxiao.token or the environment variable " + TokenEnv})
		}
	}
	if strings.ContainsAny(c.token, "\r\n\x00") {
		what := "the token"
		if source == "yunxiao" {
			what = "the token in " + TokenEnv
		}
		errs = append(errs, fieldError{source, what + " contains a line break or NUL byte"})
		c.token = ""
	}

	errs = append(errs, c.resolveWebhook(dir)...)

	// Name a missing or unreadable file by its key, as for token_file,
	// rather than leaving it to NewTLSConfig's nested message.
	y.TLSConfig.SetDirectory(dir)
	tlsOK := true
	for _, f := range []struct{ key, file string }{
		{"ca_file", y.TLSConfig.CAFile},
		{"cert_file", y.TLSConfig.CertFile},
		{"key_file", y.TLSConfig.KeyFile},
	} {
		if f.file == "" {
			continue
		}
		if _, err := os.ReadFile(f.file); err != nil {
			errs = append(errs, fileError("yunxiao.tls_config."+f.key, f.file, err))
			tlsOK = false
		}
	}
	if tlsOK {
		tlsConfig, err := commoncfg.NewTLSConfig(&y.TLSConfig)
		if err != nil {
			errs = append(errs, fieldError{"yunxiao.tls_config", err.Error()})
		}
		c.tls = tlsConfig
	}
	return errs
}

// resolveWebhook reads the webhook's secret by the API token's rules:
// inline or from a file, trimmed, re-read on every reload.
func (c *Config) resolveWebhook(dir string) []fieldError {
	w := &c.Webhook
	var source string
	switch {
	case w.Token != "" && w.TokenFile != "":
		return []fieldError{{"webhook.token_file", "set either token or token_file, not both"}}
	case w.TokenFile != "":
		source = "webhook.token_file"
		file := commoncfg.JoinDir(dir, w.TokenFile)
		data, err := os.ReadFile(file)
		if err != nil {
			return []fieldError{fileError(source, file, err)}
		}
		c.webhookToken = strings.TrimSpace(string(data))
		if c.webhookToken == "" {
			return []fieldError{{source, file + " is empty"}}
		}
		c.warnIfReadableByOthers(file, source)
	case w.Token != "":
		source = "webhook.token"
		c.webhookToken = strings.TrimSpace(string(w.Token))
	default:
		return nil
	}
	// The secret travels in a URL query: keep it to characters that need
	// no escaping there, and long enough not to be guessed.
	switch {
	case len(c.webhookToken) < 16:
		c.webhookToken = ""
		return []fieldError{{source, "the webhook token must be at least 16 characters (it is the only thing that authenticates Flow's calls)"}}
	case strings.Trim(c.webhookToken, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~") != "":
		c.webhookToken = ""
		return []fieldError{{source, "the webhook token may contain only letters, digits and - . _ ~ (it is sent in a URL query)"}}
	}
	return nil
}

// fileError reports a file named by key that cannot be read.
func fileError(key, file string, err error) fieldError {
	return fieldError{key, fmt.Sprintf("cannot read %s: %s", file, unwrapPathError(err))}
}

func (c *Config) warnIfReadableByOthers(file, what string) {
	info, err := os.Stat(file)
	// Group read is how Kubernetes lets a non-root pod read a mounted
	// Secret (mode 0440 with fsGroup); other users reading it is the risk.
	if err == nil && info.Mode().Perm()&0o004 != 0 {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s %s is readable by other users (mode %s); chmod 600 it", what, file, info.Mode().Perm()))
	}
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// keyIndex records, for every key and list item in the parsed YAML tree,
// its path, line, value node and the Go type the schema decodes it into.
type keyIndex struct {
	entries     []keyEntry     // in file order: a parent before its children
	line        map[string]int // path -> line of its key (or item)
	byKeyLine   map[int][]int  // line -> entries whose key is on it
	byValueLine map[int][]int  // line -> entries whose value starts on it
}

type keyEntry struct {
	path  string // e.g. yunxiao.tls_config.ca_file, pipelines[2].id
	line  int    // line of the key, or of the item in a list
	value *yaml.Node
	typ   reflect.Type // nil when the schema has no such key
}

// indexKeys walks root alongside typ. Aliases are not followed, so the walk
// stays linear in the size of the file.
func indexKeys(root *yaml.Node, typ reflect.Type) *keyIndex {
	idx := &keyIndex{line: map[string]int{}, byKeyLine: map[int][]int{}, byValueLine: map[int][]int{}}
	var walk func(n *yaml.Node, path string, t reflect.Type)
	walk = func(n *yaml.Node, path string, t reflect.Type) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				idx.add(keyEntry{"", c.Line, c, t}) // the file as a whole
				walk(c, path, t)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				ft := fieldType(t, k.Value)
				idx.add(keyEntry{p, k.Line, v, ft})
				walk(v, p, ft)
			}
		case yaml.SequenceNode:
			et := elemType(t)
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				idx.add(keyEntry{p, c.Line, c, et})
				walk(c, p, et)
			}
		}
	}
	walk(root, "", typ)
	return idx
}

func (idx *keyIndex) add(e keyEntry) {
	if _, ok := idx.line[e.path]; !ok && e.path != "" {
		idx.line[e.path] = e.line
	}
	i := len(idx.entries)
	idx.entries = append(idx.entries, e)
	idx.byKeyLine[e.line] = append(idx.byKeyLine[e.line], i)
	vl := resolveAlias(e.value).Line
	idx.byValueLine[vl] = append(idx.byValueLine[vl], i)
}

// fieldType is the type the key name decodes into within t, or nil.
func fieldType(t reflect.Type, name string) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Map:
		return t.Elem()
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if slices.Contains(strings.Split(opts, ","), "inline") {
				if ft := fieldType(f.Type, name); ft != nil {
					return ft
				}
				continue
			}
			if tag == "" {
				tag = strings.ToLower(f.Name)
			}
			if tag == name {
				return f.Type
			}
		}
	}
	return nil
}

// elemType is the type of t's list items, or nil.
func elemType(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		return t.Elem()
	}
	return nil
}

// lineOf finds the line of path, or of its nearest ancestor in the file.
func (idx *keyIndex) lineOf(path string) int {
	for p := path; p != ""; {
		if l, ok := idx.line[p]; ok {
			return l
		}
		cut := strings.LastIndexAny(p, ".[")
		if cut < 0 {
			break
		}
		p = p[:cut]
	}
	return 0
}

// keyAt returns the deepest key path on line whose last element is name
// (any key when name is empty).
func (idx *keyIndex) keyAt(line int, name string) string {
	best := ""
	for _, i := range idx.byKeyLine[line] {
		e := idx.entries[i]
		if name == "" || e.path == name || strings.HasSuffix(e.path, "."+name) {
			if len(e.path) > len(best) {
				best = e.path
			}
		}
	}
	return best
}

// valueAt finds the entry whose value yaml.v3 described in a type error as
// tag and value (value truncated as yaml.v3 does) on line.
func (idx *keyIndex) valueAt(line int, tag, value string) (keyEntry, bool) {
	var best keyEntry
	found := false
	for _, i := range idx.byValueLine[line] {
		e := idx.entries[i]
		n := resolveAlias(e.value) // the decoder reports the anchored value
		if n.ShortTag() != tag {
			continue
		}
		if n.Kind == yaml.ScalarNode && truncateLikeYAML(n.Value) != value {
			continue
		}
		// The decoder stops at the value it cannot take, so prefer a key
		// the schema knows over one nested inside that value.
		known, bestKnown := e.typ != nil, best.typ != nil
		if !found || known && !bestKnown || known == bestKnown && len(e.path) > len(best.path) {
			best, found = e, true
		}
	}
	return best, found
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// shortValue shows a scalar as yaml.v3 does, at most 7 characters and
// "...", but cut between characters rather than inside one.
func shortValue(v string) string {
	if r := []rune(v); len(r) > 10 {
		return string(r[:7]) + "..."
	}
	return v
}

func truncateLikeYAML(v string) string {
	if len(v) > 10 {
		return v[:7] + "..."
	}
	return v
}

var (
	yamlLineErr     = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
	unknownField    = regexp.MustCompile(`(?s)^field (.+) not found in type \S+$`)
	cannotUnmarshal = regexp.MustCompile("(?s)^cannot unmarshal (\\S+)(?: `(.*)`)? into (\\S+)$")
	yamlLinePrefix  = regexp.MustCompile(`^yaml: line (\d+): `)
	duplicateKey    = regexp.MustCompile(`(?s)^mapping key "(.*)" already defined at line \d+$`)

	// oneLine keeps a value or key with a line break to one line of message.
	oneLine = strings.NewReplacer("\n", `\n`, "\r", `\r`)

	durationType   = reflect.TypeFor[model.Duration]()
	urlType        = reflect.TypeFor[commoncfg.URL]()
	tlsVersionType = reflect.TypeFor[commoncfg.TLSVersion]()
	regexpType     = reflect.TypeFor[Regexp]()
	friendlyTypes  = map[string]string{"model.Duration": "a duration such as 30s or 5m", "int64": "an integer", "int": "an integer", "float64": "a number", "bool": "true or false", "string": "a string"}
)

// describe says in words what a value of type t is written as.
func describe(t reflect.Type) string {
	switch t {
	case durationType:
		return "a duration such as 30s or 5m"
	case urlType:
		return "a URL"
	case tlsVersionType:
		return "a TLS version such as TLS12"
	case regexpType:
		return "a regular expression"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return describe(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "a mapping of keys"
	}
	return ""
}

// formatYAMLError turns yaml.v3's errors into file:line: key: reason lines
// that name keys and kinds of value, never Go types.
func formatYAMLError(path string, err error, idx *keyIndex) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		if e, ok := idx.locate(err); ok {
			if e.path == "" {
				return joinLines([]string{fmt.Sprintf("%s:%d: %s", path, e.line, customReason(e, err))})
			}
			return joinLines([]string{fmt.Sprintf("%s:%d: %s: %s", path, e.line, e.path, customReason(e, err))})
		}
		return syntaxError(path, err)
	}
	lines := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		m := yamlLineErr.FindStringSubmatch(e)
		if m == nil {
			lines = append(lines, fmt.Sprintf("%s: %s", path, e))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		reason := m[2]
		if u := unknownField.FindStringSubmatch(reason); u != nil {
			key := idx.keyAt(line, u[1])
			if key == "" {
				key = u[1]
			}
			lines = append(lines, fmt.Sprintf("%s:%d: %s: unknown key", path, line, key))
			continue
		}
		key := idx.keyAt(line, "")
		if d := duplicateKey.FindStringSubmatch(reason); d != nil {
			if k := idx.keyAt(line, d[1]); k != "" {
				key = k
			}
		}
		if c := cannotUnmarshal.FindStringSubmatch(reason); c != nil {
			tag, value, goType := c[1], c[2], c[3]
			want := ""
			if e, ok := idx.valueAt(line, tag, c[2]); ok {
				key = e.path
				if e.typ != nil {
					want = describe(e.typ)
				}
				value = shortValue(resolveAlias(e.value).Value)
			}
			if want == "" {
				want = friendlyTypes[goType]
			}
			reason = "cannot unmarshal " + tag
			if strings.Contains(m[2], "`") {
				reason += " `" + value + "`"
			}
			if want != "" {
				reason += " as " + want
			} else {
				reason += " here" // rather than name a Go type
			}
		}
		if key != "" {
			lines = append(lines, fmt.Sprintf("%s:%d: %s: %s", path, line, key, reason))
		} else {
			lines = append(lines, fmt.Sprintf("%s:%d: %s", path, line, reason))
		}
	}
	return joinLines(lines)
}

// joinLines makes one error of one line per problem, in valid UTF-8
// (a !!binary key can decode to anything).
func joinLines(lines []string) error {
	for i, l := range lines {
		lines[i] = strings.ToValidUTF8(oneLine.Replace(l), "\uFFFD")
	}
	return errors.New(strings.Join(lines, "\n"))
}

// locate finds the value whose own UnmarshalYAML (or UnmarshalText)
// returned err, which yaml.v3 passes on without a line: it decodes each
// value of such a type alone, deepest first.
func (idx *keyIndex) locate(err error) (keyEntry, bool) {
	for i := len(idx.entries) - 1; i >= 0; i-- {
		e := idx.entries[i]
		if e.typ == nil || !hasOwnUnmarshal(e.typ) {
			continue
		}
		v := reflect.New(e.typ)
		if err2 := e.value.Decode(v.Interface()); err2 != nil && err2.Error() == err.Error() {
			return e, true
		}
	}
	return keyEntry{}, false
}

type obsoleteUnmarshaler interface {
	UnmarshalYAML(unmarshal func(any) error) error
}

func hasOwnUnmarshal(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(reflect.TypeFor[obsoleteUnmarshaler]()) ||
		p.Implements(reflect.TypeFor[yaml.Unmarshaler]()) ||
		p.Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

// customReason words an error from a type's own UnmarshalYAML.
func customReason(e keyEntry, err error) string {
	if e.typ == durationType {
		v := resolveAlias(e.value).Value
		if rest, ok := strings.CutPrefix(v, "-"); ok {
			if _, perr := model.ParseDuration(rest); perr == nil {
				return "must be positive, not " + v
			}
		}
		return fmt.Sprintf("must be %s, not %q", describe(durationType), v)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return "not a valid URL: " + ue.Err.Error()
	}
	return err.Error()
}

// syntaxError reports YAML that does not parse.
func syntaxError(path string, err error) error {
	msg := err.Error()
	if m := yamlLinePrefix.FindStringSubmatch(msg); m != nil {
		msg = fmt.Sprintf("%s:%s: invalid YAML: %s", path, m[1], msg[len(m[0]):])
	} else if rest, ok := strings.CutPrefix(msg, "yaml: "); ok {
		msg = fmt.Sprintf("%s: invalid YAML: %s", path, rest)
	} else {
		msg = fmt.Sprintf("%s: %s", path, msg)
	}
	return joinLines([]string{msg})
}

func formatFieldErrors(path string, errs []fieldError, idx *keyIndex) error {
	sort.SliceStable(errs, func(i, j int) bool { return idx.lineOf(errs[i].path) < idx.lineOf(errs[j].path) })
	lines := make([]string, len(errs))
	for i, e := range errs {
		if l := idx.lineOf(e.path); l > 0 {
			lines[i] = fmt.Sprintf("%s:%d: %s: %s", path, l, e.path, e.msg)
		} else {
			lines[i] = fmt.Sprintf("%s: %s: %s", path, e.path, e.msg)
		}
	}
	return joinLines(lines)
}
