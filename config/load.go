package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	commoncfg "github.com/prometheus/common/config"
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
		return nil, fmt.Errorf("%s: %s", path, rewriteYAMLError(err.Error(), nil))
	}
	if len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: the file is empty", path)
	}
	idx := indexKeys(&root)

	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, formatYAMLError(path, err, idx)
	}
	cfg.SourceFile = path
	errs := cfg.validate()
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
	switch {
	case y.TokenFile != "":
		file := commoncfg.JoinDir(dir, y.TokenFile)
		data, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fieldError{"yunxiao.token_file", unwrapPathError(err).Error() + " (" + file + ")"})
			break
		}
		c.token = strings.TrimSpace(string(data))
		if c.token == "" {
			errs = append(errs, fieldError{"yunxiao.token_file", file + " is empty"})
		}
		c.warnIfReadableByOthers(file, "yunxiao.token_file")
	case y.Token != "":
		c.token = strings.TrimSpace(string(y.Token))
		if c.SourceFile != "" {
			c.warnIfReadableByOthers(c.SourceFile, "the config file, which holds yunxiao.token inline,")
		}
	default:
		c.token = strings.TrimSpace(opts.Getenv(TokenEnv))
		if c.token == "" {
			errs = append(errs, fieldError{"yunxiao", "no token: set yunxiao.token_file, yunxiao.token or the environment variable " + TokenEnv})
		}
	}
	if strings.ContainsAny(c.token, "\r\n\x00") {
		errs = append(errs, fieldError{"yunxiao.token", "the token contains a line break or NUL byte"})
		c.token = ""
	}

	y.TLSConfig.SetDirectory(dir)
	tlsConfig, err := commoncfg.NewTLSConfig(&y.TLSConfig)
	if err != nil {
		errs = append(errs, fieldError{"yunxiao.tls_config", err.Error()})
	}
	c.tls = tlsConfig
	return errs
}

func (c *Config) warnIfReadableByOthers(file, what string) {
	info, err := os.Stat(file)
	if err == nil && info.Mode().Perm()&0o044 != 0 {
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

// keyIndex maps key paths to lines and back, from the parsed YAML tree.
type keyIndex struct {
	line  map[string]int   // path -> line of its key (or item)
	paths map[int][]string // line -> paths whose key is on it
}

func indexKeys(root *yaml.Node) *keyIndex {
	idx := &keyIndex{line: map[string]int{}, paths: map[int][]string{}}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				idx.add(p, k.Line)
				walk(v, p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				idx.add(p, c.Line)
				walk(c, p)
			}
		}
	}
	walk(root, "")
	return idx
}

func (idx *keyIndex) add(path string, line int) {
	if _, ok := idx.line[path]; !ok {
		idx.line[path] = line
	}
	idx.paths[line] = append(idx.paths[line], path)
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
	for _, p := range idx.paths[line] {
		if name == "" || p == name || strings.HasSuffix(p, "."+name) {
			if len(p) > len(best) {
				best = p
			}
		}
	}
	return best
}

var (
	yamlLineErr    = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField   = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
	typeName       = regexp.MustCompile(`into (model\.Duration|int64|int|float64|bool|string|config\.\w+|\[\]config\.\w+)$`)
	friendlyTypes  = map[string]string{"model.Duration": "a duration such as 30s or 5m", "int64": "an integer", "int": "an integer", "float64": "a number", "bool": "true or false", "string": "a string"}
	yamlLinePrefix = regexp.MustCompile(`^yaml: line (\d+): `)
)

// formatYAMLError turns yaml.v3's errors into file:line: key: reason lines.
func formatYAMLError(path string, err error, idx *keyIndex) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("%s: %s", path, rewriteYAMLError(err.Error(), idx))
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
		if t := typeName.FindStringSubmatch(reason); t != nil {
			if friendly, ok := friendlyTypes[t[1]]; ok {
				reason = strings.TrimSuffix(reason, t[0]) + "as " + friendly
			}
		}
		if key := idx.keyAt(line, ""); key != "" {
			lines = append(lines, fmt.Sprintf("%s:%d: %s: %s", path, line, key, reason))
		} else {
			lines = append(lines, fmt.Sprintf("%s:%d: %s", path, line, reason))
		}
	}
	return errors.New(strings.Join(lines, "\n"))
}

// rewriteYAMLError turns "yaml: line N: reason" into "N: reason" so that
// with the file name it reads file:N: reason.
func rewriteYAMLError(msg string, _ *keyIndex) string {
	if m := yamlLinePrefix.FindStringSubmatch(msg); m != nil {
		return m[1] + ": " + strings.TrimPrefix(msg, m[0])
	}
	return strings.TrimPrefix(msg, "yaml: ")
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
	return errors.New(strings.Join(lines, "\n"))
}
