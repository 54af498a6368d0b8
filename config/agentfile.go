package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/tollgate/tollgate/codes"
	"gopkg.in/yaml.v3"
)

// AgentFileVersion is the only version of the agent's config file schema
// that this code reads.
const AgentFileVersion = 1

// AgentFile is the agent's YAML config file (tollgate.yml), read by
// `tollgate` and written by `tollgate config`. Unknown keys are refused
// with their line number; keys left out take the defaults their fields
// name.
//
//	version: 1
//	authtoken: 2abc..._secret
//	server_addr: edge.example.com:4443
//	endpoints:
//	  web:
//	    url: https://app.example.com
//	    upstream: 8080
type AgentFile struct {
	// Version is the schema version; 0 (absent) is read as 1.
	Version int `yaml:"version"`
	// Authtoken authenticates the agent. Secret: never logged.
	Authtoken string `yaml:"authtoken,omitempty"`
	// ServerAddr is the edge's agent address, HOST:PORT.
	ServerAddr string `yaml:"server_addr,omitempty"`
	// RootCA is a PEM file of CAs that sign the edge's certificate;
	// relative paths are relative to the config file. "" = system roots.
	RootCA string `yaml:"root_ca,omitempty"`
	// Transport is auto, quic or tcp; "" means auto (see TransportAuto).
	Transport string `yaml:"transport,omitempty"`
	// Region is a region code (us, eu, ...; see package regions); "" lets
	// the agent pick the region whose edge answers fastest.
	Region string `yaml:"region,omitempty"`
	// WebAddr is the inspection API address; "false" disables it; ""
	// means DefaultWebAddr.
	WebAddr string `yaml:"web_addr,omitempty"`
	// Inspect records HTTP requests for the request inspector
	// (docs/inspect.md); false turns recording off. Absent means true.
	Inspect *bool `yaml:"inspect,omitempty"`
	// MetricsAddr serves /metrics, /healthz and /readyz on a listener of
	// their own, HOST:PORT (port 0 picks a free one); "" means none.
	MetricsAddr string `yaml:"metrics_addr,omitempty"`
	// LogLevel is debug, info, warn or error; "" means DefaultLogLevel.
	LogLevel string `yaml:"log_level,omitempty"`
	// LogFormat is console or json; "" means DefaultLogFormat.
	LogFormat string `yaml:"log_format,omitempty"`
	// HeartbeatInterval is how often agent and edge check that the
	// connection is alive, a Go duration ("10s"); absent means the agent's
	// default (10s).
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval,omitempty"`
	// HeartbeatTolerance is how long past a missed heartbeat the
	// connection counts as dead ("15s"); absent means the agent's default
	// (15s).
	HeartbeatTolerance time.Duration `yaml:"heartbeat_tolerance,omitempty"`
	// HAConnections is how many connections the agent keeps to distinct
	// edges of its region, 1 to MaxHAConnections; 0 (absent) means
	// DefaultHAConnections.
	HAConnections int `yaml:"ha_connections,omitempty"`
	// APIKey authenticates `tollgate api` to the control plane's REST API.
	// Secret: never logged.
	APIKey string `yaml:"api_key,omitempty"`
	// APIURL is the base URL of the control plane's REST API used by
	// `tollgate api`; "" means DefaultAPIURL.
	APIURL string `yaml:"api_url,omitempty"`
	// Endpoints are started by `tollgate start`, by name.
	Endpoints map[string]AgentFileEndpoint `yaml:"endpoints,omitempty"`

	dir string // directory of the file it was loaded from
}

// AgentFileEndpoint is one endpoint in the agent's config file, under its
// name; see Endpoint for the meaning and the defaults of each key.
type AgentFileEndpoint struct {
	Proto               string   `yaml:"proto,omitempty"`
	URL                 string   `yaml:"url,omitempty"`
	Upstream            string   `yaml:"upstream,omitempty"`
	UpstreamTLSInsecure bool     `yaml:"upstream_tls_insecure,omitempty"`
	MinTLS              string   `yaml:"min_tls,omitempty"`
	HSTS                string   `yaml:"hsts,omitempty"`
	CIDRAllow           []string `yaml:"cidr_allow,omitempty"`
	CIDRDeny            []string `yaml:"cidr_deny,omitempty"`
	IPPolicyIDs         []string `yaml:"ip_policy_ids,omitempty"`
	BasicAuth           []string `yaml:"basic_auth,omitempty"`
	Metadata            string   `yaml:"metadata,omitempty"`
	PoolingEnabled      bool     `yaml:"pooling_enabled,omitempty"`
	ProxyProto          int      `yaml:"proxy_proto,omitempty"`
	// Crt and Key are Endpoint.TerminateCert and TerminateKey (the flags
	// --crt and --key of `tollgate tls`); relative paths are relative to
	// the config file.
	Crt string `yaml:"crt,omitempty"`
	Key string `yaml:"key,omitempty"`
}

// DefaultAgentFilePath returns where the agent's config file lives:
// $TOLLGATE_CONFIG, else $XDG_CONFIG_HOME/tollgate/tollgate.yml, else
// ~/.config/tollgate/tollgate.yml. getenv is os.Getenv in production.
func DefaultAgentFilePath(getenv func(string) string) (string, error) {
	if p := getenv(EnvConfig); p != "" {
		return p, nil
	}
	if x := getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "tollgate", "tollgate.yml"), nil
	}
	home := getenv("HOME")
	if home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", invalid("Cannot find the config file: set TOLLGATE_CONFIG or HOME.").WithCause(err)
		}
		home = h
	}
	return filepath.Join(home, ".config", "tollgate", "tollgate.yml"), nil
}

// LoadAgentFile reads and validates the agent's config file at path. A
// missing file is returned as an error matching fs.ErrNotExist; every other
// problem is a *codes.Error TG_9002 naming the file and, for YAML problems,
// the line.
func LoadAgentFile(path string) (*AgentFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, invalid("Cannot read the config file %s: %v.", path, unwrapPathError(err)).WithCause(err)
	}
	return parseAgentFileAt(path, data)
}

// ParseAgentFile decodes an agent config file's contents strictly: unknown
// keys, several YAML documents, versions other than 1, invalid endpoints
// (Endpoint.Validate), unknown transports, log levels and formats, invalid
// addresses and negative heartbeat durations are refused with a
// *codes.Error TG_9002; YAML problems name the line. Relative crt and key
// paths are read relative to the working directory (LoadAgentFile reads
// them relative to the file).
func ParseAgentFile(data []byte) (*AgentFile, error) {
	return parseAgentFile(data, "")
}

// parseAgentFile is ParseAgentFile for a file in directory dir ("" = the
// working directory).
func parseAgentFile(data []byte, dir string) (*AgentFile, error) {
	f := &AgentFile{dir: dir}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, invalid("only one YAML document is allowed.")
	}
	if f.Version != 0 && f.Version != AgentFileVersion {
		return nil, invalid("version %d is not supported: this agent reads version %d.", f.Version, AgentFileVersion)
	}
	for name, ep := range f.Endpoints {
		if _, err := ep.endpoint(name, dir).Validate(); err != nil {
			return nil, err
		}
	}
	if err := f.checkAgentKeys(); err != nil {
		return nil, err
	}
	return f, nil
}

var yamlFieldRE = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+`)

// yamlError turns a yaml.v3 error into a *codes.Error with plain words:
// "line 7: unknown key "foo"".
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, 0, len(te.Errors))
		for _, m := range te.Errors {
			if sm := yamlFieldRE.FindStringSubmatch(m); sm != nil {
				m = "line " + sm[1] + ": unknown key \"" + sm[2] + "\""
			}
			msgs = append(msgs, m)
		}
		return invalid("%s.", strings.Join(msgs, "; ")).WithCause(err)
	}
	return invalid("%s.", strings.TrimPrefix(err.Error(), "yaml: ")).WithCause(err)
}

// Settings returns the agent-wide values the file sets; a relative root_ca
// is resolved against the file's directory.
func (f *AgentFile) Settings() AgentSettings {
	var s AgentSettings
	set := func(dst **string, v string) {
		if v != "" {
			*dst = &v
		}
	}
	set(&s.Authtoken, f.Authtoken)
	set(&s.ServerAddr, f.ServerAddr)
	set(&s.RootCA, f.relPath(f.RootCA))
	set(&s.Transport, f.Transport)
	set(&s.Region, f.Region)
	set(&s.WebAddr, f.WebAddr)
	set(&s.MetricsAddr, f.MetricsAddr)
	set(&s.LogLevel, f.LogLevel)
	set(&s.LogFormat, f.LogFormat)
	if f.HAConnections != 0 {
		n := f.HAConnections
		s.HAConnections = &n
	}
	if f.Inspect != nil {
		v := *f.Inspect
		s.Inspect = &v
	}
	for _, d := range []struct {
		dst **time.Duration
		v   time.Duration
	}{{&s.HeartbeatInterval, f.HeartbeatInterval}, {&s.HeartbeatTolerance, f.HeartbeatTolerance}} {
		if d.v != 0 {
			v := d.v
			*d.dst = &v
		}
	}
	return s
}

// checkAgentKeys checks the agent-wide keys that have rules of their own.
func (f *AgentFile) checkAgentKeys() error {
	if f.Transport != "" {
		if _, err := ParseTransport(f.Transport); err != nil {
			return err
		}
	}
	if f.HAConnections != 0 {
		if err := CheckHAConnections(f.HAConnections); err != nil {
			return invalid("ha_connections is %d: use 1 to %d (default %d).", f.HAConnections, MaxHAConnections, DefaultHAConnections)
		}
	}
	if f.LogLevel != "" {
		if err := CheckLogLevel(f.LogLevel); err != nil {
			return err
		}
	}
	if f.LogFormat != "" {
		if err := CheckLogFormat(f.LogFormat); err != nil {
			return err
		}
	}
	if f.MetricsAddr != "" {
		if err := CheckListenAddr(f.MetricsAddr); err != nil {
			return invalid("metrics_addr %q is not HOST:PORT (for example 127.0.0.1:9101).", f.MetricsAddr)
		}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"heartbeat_interval", f.HeartbeatInterval}, {"heartbeat_tolerance", f.HeartbeatTolerance}} {
		if d.v < 0 {
			return invalid("%s is %s: give a positive duration such as 10s, or leave it out for the default.", d.key, d.v)
		}
	}
	return nil
}

// relPath resolves a path the file names against the file's directory.
func (f *AgentFile) relPath(p string) string {
	return relTo(f.dir, p)
}

// relTo resolves a relative p against dir; "" and absolute paths are kept.
func relTo(dir, p string) string {
	if p != "" && !filepath.IsAbs(p) && dir != "" {
		return filepath.Join(dir, p)
	}
	return p
}

// SelectEndpoints returns the named endpoints of the file, or all of them
// (sorted by name) when all is true, each with its Name set. Errors are
// *codes.Error TG_9002: no names and not all, an unknown name, or all
// with no endpoints defined.
func (f *AgentFile) SelectEndpoints(names []string, all bool) ([]Endpoint, error) {
	if all {
		names = names[:0:0]
		for n := range f.Endpoints {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil, invalid("The config file defines no endpoints: add some under 'endpoints:'.")
		}
	}
	if len(names) == 0 {
		return nil, invalid("Name the endpoints to start, or pass --all.")
	}
	out := make([]Endpoint, 0, len(names))
	for _, n := range names {
		ep, ok := f.Endpoints[n]
		if !ok {
			return nil, invalid("No endpoint %q in the config file; it defines: %s.", n, f.endpointNames())
		}
		out = append(out, ep.endpoint(n, f.dir))
	}
	return out, nil
}

func (f *AgentFile) endpointNames() string {
	if len(f.Endpoints) == 0 {
		return "none"
	}
	names := make([]string, 0, len(f.Endpoints))
	for n := range f.Endpoints {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// endpoint returns the file's endpoint as an Endpoint named name, with
// crt and key resolved against dir, the file's directory.
func (e AgentFileEndpoint) endpoint(name, dir string) Endpoint {
	return Endpoint{
		Name:                name,
		Proto:               e.Proto,
		URL:                 e.URL,
		Upstream:            e.Upstream,
		UpstreamTLSInsecure: e.UpstreamTLSInsecure,
		MinTLS:              e.MinTLS,
		HSTS:                e.HSTS,
		CIDRAllow:           e.CIDRAllow,
		CIDRDeny:            e.CIDRDeny,
		IPPolicyIDs:         e.IPPolicyIDs,
		BasicAuth:           e.BasicAuth,
		Metadata:            e.Metadata,
		PoolingEnabled:      e.PoolingEnabled,
		ProxyProto:          e.ProxyProto,
		TerminateCert:       relTo(dir, e.Crt),
		TerminateKey:        relTo(dir, e.Key),
	}
}

// SaveAgentFile writes f to path as YAML with mode 0600 (it holds the
// authtoken), creating the directory with mode 0700. The write is atomic:
// a temporary file in the same directory is renamed over path.
func SaveAgentFile(path string, f *AgentFile) error {
	out := *f
	if out.Version == 0 {
		out.Version = AgentFileVersion
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&out); err != nil {
		return fmt.Errorf("encoding config file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encoding config file: %w", err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

// UpdateAgentFile sets top-level string keys (authtoken, server_addr,
// root_ca, ...) in the agent's config file at path, keeping its other keys,
// their order and its comments; a key set to "" is removed. The file is
// created (version 1) when missing. The result is validated before it is
// written with mode 0600.
func UpdateAgentFile(path string, set map[string]string) error {
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		data = []byte(fmt.Sprintf("version: %d\n", AgentFileVersion))
	case err != nil:
		return invalid("Cannot read the config file %s: %v.", path, unwrapPathError(err)).WithCause(err)
	}
	if _, err := parseAgentFileAt(path, data); err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return yamlError(err)
	}
	if doc.Kind == 0 { // empty file
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return invalid("Config file %s: the top level must be a mapping of keys.", path)
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		setMappingKey(root, k, set[k])
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return fmt.Errorf("encoding config file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encoding config file: %w", err)
	}
	if _, err := parseAgentFileAt(path, buf.Bytes()); err != nil {
		return err
	}
	return writeFileAtomic(path, buf.Bytes())
}

// parseAgentFileAt is ParseAgentFile for the file at path, with errors
// naming it.
func parseAgentFileAt(path string, data []byte) (*AgentFile, error) {
	f, err := parseAgentFile(data, filepath.Dir(path))
	if err != nil {
		var ce *codes.Error
		if errors.As(err, &ce) {
			c := *ce
			c.Message = "Config file " + path + ": " + c.Message
			return nil, &c
		}
		return nil, err
	}
	return f, nil
}

// setMappingKey sets key to a string value in a YAML mapping node, or
// deletes it when value is "".
func setMappingKey(m *yaml.Node, key, value string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			if value == "" {
				m.Content = append(m.Content[:i], m.Content[i+2:]...)
				return
			}
			m.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value,
				HeadComment: m.Content[i+1].HeadComment, LineComment: m.Content[i+1].LineComment}
			return
		}
	}
	if value == "" {
		return
	}
	m.Content = append(m.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
}

// writeFileAtomic writes data to path with mode 0600 via a temporary file
// and a rename, creating the directory with mode 0700.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return invalid("Cannot create the directory %s: %v.", dir, unwrapPathError(err)).WithCause(err)
	}
	tmp, err := os.CreateTemp(dir, ".tollgate-*.yml")
	if err != nil {
		return invalid("Cannot write in %s: %v.", dir, unwrapPathError(err)).WithCause(err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(name)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("writing config file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing config file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("writing config file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing config file: %w", err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("writing config file: %w", err)
	}
	ok = true
	return nil
}
