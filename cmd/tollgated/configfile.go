package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/tollgate/tollgate/codes"
)

// The configuration file (docs/tollgated-config.md) is derived from the
// commands' flags, so that the two cannot drift: a section per command
// (control, edge, dev), and in it a key per flag, the flag's name with "_"
// for "-", taking what the flag takes. Every flag a command defines is a
// key, including flags added later; no flag is a key twice.

// configFlag names the configuration file of control, edge and dev.
const configFlag = "config"

// daemonCommand is a command that a configuration file section configures:
// build returns a fresh command and the check of its options, which
// validates the flags' values without touching the network or the disk.
type daemonCommand struct {
	name  string
	build func() (*cobra.Command, func() error)
}

// daemonCommands are the sections of a configuration file, in the order
// the reference lists them.
func daemonCommands() []daemonCommand {
	return []daemonCommand{
		{"control", newControl},
		{"edge", newEdge},
		{"dev", newDev},
	}
}

// sectionNamesList names the sections (daemonCommands; kept apart so that
// the commands' construction does not depend on itself).
func sectionNamesList() []string { return []string{"control", "edge", "dev"} }

// fileKey is the configuration file key of the flag named flag.
func fileKey(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// inFile reports whether a flag is a configuration file key: every flag
// but --help and --config itself.
func inFile(f *pflag.Flag) bool { return f.Name != "help" && f.Name != configFlag }

// withConfigFile adds --config to cmd, a command of section name: before
// the command runs, the file's section sets every flag not given on the
// command line, then check validates the result.
func withConfigFile(cmd *cobra.Command, name string, check func() error) *cobra.Command {
	cmd.Flags().String(configFlag, "", "YAML configuration file: its "+name+": section sets the flags not given on the command line (docs/tollgated-config.md)")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if path, _ := cmd.Flags().GetString(configFlag); path != "" {
			cf, err := readConfigFile(path)
			if err != nil {
				return err
			}
			if err := cf.apply(cmd.Flags(), name); err != nil {
				return err
			}
		}
		return check()
	}
	return cmd
}

// configFile is a parsed configuration file: its sections' entries.
type configFile struct {
	path     string
	sections map[string]*yaml.Node // mapping nodes, or nil for an empty section
	lines    map[string]int        // line of each section's key
}

// readConfigFile reads and parses path. Errors (TG_9002) name the file and
// the line: a file that is not YAML, a top level that is not a mapping, an
// unknown or repeated section, a section that is not a mapping.
func readConfigFile(path string) (*configFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, codes.NewError(codes.ConfigInvalid, "Cannot read the configuration file: %v.", err).WithCause(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, codes.NewError(codes.ConfigInvalid, "%s is not valid YAML: %v.", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	cf := &configFile{path: path, sections: map[string]*yaml.Node{}, lines: map[string]int{}}
	if len(doc.Content) == 0 {
		return cf, nil // an empty file
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, cf.errorf(top, "the file must be a mapping of sections (%s), each a mapping of flags", sectionNames())
	}
	var errs []string
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		switch {
		case !slices.Contains(sectionNamesList(), k.Value):
			errs = append(errs, cf.msgf(k, "unknown section %q: the sections are %s", k.Value, sectionNames()))
		case cf.lines[k.Value] != 0:
			errs = append(errs, cf.msgf(k, "section %q again (first on line %d)", k.Value, cf.lines[k.Value]))
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
			cf.lines[k.Value], cf.sections[k.Value] = k.Line, nil
		case v.Kind != yaml.MappingNode:
			errs = append(errs, cf.msgf(v, "section %q must be a mapping of flag names (with _ for -) to values", k.Value))
		default:
			cf.lines[k.Value], cf.sections[k.Value] = k.Line, v
		}
	}
	if len(errs) > 0 {
		return nil, codes.NewError(codes.ConfigInvalid, "%s", strings.Join(errs, "\n"))
	}
	return cf, nil
}

// apply sets the flags of fs from the file's section name. A flag given on
// the command line (Changed) keeps its value. Each unknown or repeated key
// and each value the flag refuses is an error naming the file, the line
// and the key; all of them are reported together (TG_9002). A file
// without the section is an error too.
func (cf *configFile) apply(fs *pflag.FlagSet, name string) error {
	sec, ok := cf.sections[name]
	if !ok {
		return codes.NewError(codes.ConfigInvalid, "%s has no %s: section: add one with the %s flags (docs/tollgated-config.md).", cf.path, name, name)
	}
	if sec == nil {
		return nil
	}
	var errs []string
	seen := map[string]int{}
	for i := 0; i+1 < len(sec.Content); i += 2 {
		k, v := sec.Content[i], sec.Content[i+1]
		key := k.Value
		f := fs.Lookup(strings.ReplaceAll(key, "_", "-"))
		switch {
		case k.Kind != yaml.ScalarNode:
			errs = append(errs, cf.msgf(k, "%s: a key must be a flag name", name))
			continue
		case f == nil || !inFile(f) || key != fileKey(f.Name):
			errs = append(errs, cf.msgf(k, "unknown key %q in section %s%s", key, name, keyHint(fs, key)))
			continue
		case seen[key] != 0:
			errs = append(errs, cf.msgf(k, "%s.%s again (first on line %d)", name, key, seen[key]))
			continue
		}
		seen[key] = k.Line
		if f.Changed {
			continue // the command line wins
		}
		if err := setFlag(f, v); err != nil {
			errs = append(errs, cf.msgf(v, "%s.%s: %v", name, key, err))
		}
	}
	if len(errs) > 0 {
		return codes.NewError(codes.ConfigInvalid, "%s", strings.Join(errs, "\n"))
	}
	return nil
}

// setFlag sets f from a YAML value as the command line would: a scalar is
// the flag's argument; a list flag (repeatable or comma-separated on the
// command line) also takes a sequence of scalars, one value each.
func setFlag(f *pflag.Flag, v *yaml.Node) error {
	switch {
	case v.Kind == yaml.SequenceNode:
		sv, ok := f.Value.(pflag.SliceValue)
		if !ok {
			return fmt.Errorf("takes one %s, not a list", typeName(f))
		}
		items := make([]string, 0, len(v.Content))
		for _, it := range v.Content {
			if it.Kind != yaml.ScalarNode || it.Tag == "!!null" {
				return errors.New("a list of strings is needed")
			}
			items = append(items, it.Value)
		}
		if err := sv.Replace(items); err != nil {
			return err
		}
	case v.Kind != yaml.ScalarNode:
		return fmt.Errorf("takes %s, not a mapping", article(typeName(f)))
	case v.Tag == "!!null":
		return fmt.Errorf("has no value: give %s (\"\" for an empty string)", article(typeName(f)))
	default:
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			if err := sv.Replace(nil); err != nil { // the file's value replaces the default
				return err
			}
		}
		if err := f.Value.Set(v.Value); err != nil {
			return fmt.Errorf("%q is not %s: %v", v.Value, article(typeName(f)), err)
		}
	}
	f.Changed = true
	return nil
}

// keyHint suggests the spelling of a key written like the flag (dashes).
func keyHint(fs *pflag.FlagSet, key string) string {
	if f := fs.Lookup(key); f != nil && inFile(f) && fileKey(f.Name) != key {
		return fmt.Sprintf(" (did you mean %s? keys use _ where the flag has -)", fileKey(f.Name))
	}
	return " (the keys are the command's flags with _ for -; see docs/tollgated-config.md)"
}

// msgf formats one problem at node n: "FILE:LINE: ...".
func (cf *configFile) msgf(n *yaml.Node, format string, args ...any) string {
	return fmt.Sprintf("%s:%d: %s", cf.path, n.Line, fmt.Sprintf(format, args...))
}

func (cf *configFile) errorf(n *yaml.Node, format string, args ...any) error {
	return codes.NewError(codes.ConfigInvalid, "%s", cf.msgf(n, format, args...))
}

func sectionNames() string { return strings.Join(sectionNamesList(), ", ") }

// typeName is the kind of value a flag takes, in words.
func typeName(f *pflag.Flag) string {
	switch t := f.Value.Type(); t {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "int", "int64", "uint32":
		return "integer"
	case "float64":
		return "number"
	case "duration":
		return "duration"
	case "stringSlice", "stringArray":
		return "list of strings"
	default:
		return t
	}
}

// article puts "a" or "an" before a type name.
func article(s string) string {
	if strings.HasPrefix(s, "list") {
		return "a " + s
	}
	if strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}
