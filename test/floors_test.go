package test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The floors of DESIGN.md § Packages, one row per room. A
// package belongs to the row one of whose prefixes is its path or a parent
// of it (module-relative, whole path elements), so packages added later
// under a folder inherit its floor; a package no row covers fails the test
// until a row says where it stands. Paths in notAbove and noImport match the
// same way.
//
//   - notAbove: module packages it must not depend on, directly or through
//     others (Go's transitive Deps, test files excluded).
//   - noImport: packages outside the module it must not import directly:
//     network I/O belongs to the servers, not to the leaves.
//   - noDial: its non-test files call nothing that opens a connection, a
//     listener or a DNS lookup (dialCalls).
//   - exist: each prefix must itself be a package, so that a rename or a
//     removal is noticed and the table follows.
var floors = []floor{
	{ // the leaves
		packages: []string{"config", "snapshot", "ids", "codes", "authn", "policy", "regions", "traffic"},
		notAbove: []string{"edge", "tunnel", "controlplane", "agent", "cmd"},
		noImport: networkImports, noDial: true, exist: true,
	},
	{packages: []string{"tunnel"}, notAbove: []string{"edge", "controlplane", "agent", "cmd"}, exist: true},
	{packages: []string{"edge"}, notAbove: []string{"controlplane", "agent", "cmd"}, exist: true},
	{packages: []string{"controlplane"}, notAbove: []string{"edge", "agent", "cmd"}, exist: true},
	{packages: []string{"agent"}, notAbove: []string{"edge", "controlplane", "cmd"}, exist: true},
	{packages: []string{"internal"}, notAbove: []string{"edge", "tunnel", "controlplane", "agent", "cmd"}},
	{packages: []string{"cmd", "test"}, notAbove: []string{"cmd"}},
	// What an operator installs besides the binaries (units, examples); its
	// only Go code is its tests, which run the binaries' build.
	{packages: []string{"packaging"}, notAbove: []string{"config", "edge", "tunnel", "controlplane", "agent", "cmd", "internal"},
		noImport: networkImports, noDial: true, exist: true},
}

// networkImports are the packages that do network I/O (or exist only to
// serve it) which leaves must not import. net and net/netip stay allowed:
// leaves use their address types.
var networkImports = []string{
	"net/http", "net/rpc", "net/smtp",
	"github.com/quic-go", "golang.ngrok.com/muxado", "golang.org/x/net/http2",
	"golang.org/x/net/websocket", "github.com/coder/websocket",
	"github.com/jackc/pgx", "github.com/caddyserver/certmagic", "github.com/mholt/acmez",
}

// dialCalls are the names, by package path, whose use opens a connection, a
// listener or a DNS lookup.
var dialCalls = map[string][]string{
	"net": {"Dial", "DialTimeout", "DialTCP", "DialUDP", "DialIP", "DialUnix",
		"Listen", "ListenPacket", "ListenTCP", "ListenUDP", "ListenIP", "ListenUnix", "ListenUnixgram",
		"ListenMulticastUDP", "FileConn", "FileListener", "FilePacketConn",
		"Dialer", "ListenConfig", "Resolver", "DefaultResolver",
		"LookupHost", "LookupIP", "LookupAddr", "LookupCNAME", "LookupMX", "LookupNS",
		"LookupPort", "LookupSRV", "LookupTXT"},
	"crypto/tls": {"Dial", "DialWithDialer", "Dialer", "Listen", "NewListener"},
}

// floor is one row of floors.
type floor struct {
	packages []string
	notAbove []string
	noImport []string
	noDial   bool
	exist    bool
}

// listedPackage is what `go list -json` says of one package.
type listedPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Deps       []string
	Error      *struct{ Err string }
}

// TestPackageFloors fails when a package imports above its floor (see
// floors), or when a package the table names no longer exists.
func TestPackageFloors(t *testing.T) {
	mod, pkgs := listPackages(t)
	for _, msg := range checkFloors(mod, pkgs, floors) {
		t.Error(msg)
	}
}

// listPackages runs `go list -json ./...` at the module root.
func listPackages(t *testing.T) (module string, pkgs []listedPackage) {
	t.Helper()
	out, err := goCommand("..", "list", "-m")
	if err != nil {
		t.Fatal(err)
	}
	module = strings.TrimSpace(string(out))
	out, err = goCommand("..", "list", "-json=ImportPath,Dir,GoFiles,Imports,Deps,Error", "./...")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return module, pkgs
}

// goCommand runs the go command in dir and returns its standard output.
func goCommand(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// checkFloors returns one message per broken rule: a dependency above a
// package's floor, a forbidden import, a network call in a no-dial package,
// a package no row covers, or a named package that does not exist.
func checkFloors(module string, pkgs []listedPackage, rules []floor) []string {
	var msgs []string
	rel := func(path string) (string, bool) {
		if path == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(path, module+"/")
		return r, ok
	}
	exists := map[string]bool{}
	for _, p := range pkgs {
		if r, ok := rel(p.ImportPath); ok {
			exists[r] = true
		}
	}
	for _, f := range rules {
		if !f.exist {
			continue
		}
		for _, name := range f.packages {
			if !exists[name] {
				msgs = append(msgs, fmt.Sprintf("%s: the package floors name %s, but there is no such package: "+
					"if it was renamed or removed, update the floors table in test/floors_test.go and DESIGN.md § Packages", name, name))
			}
		}
	}
	for _, p := range pkgs {
		name, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		f := floorOf(rules, name)
		if f == nil {
			msgs = append(msgs, fmt.Sprintf("%s: no row of the package floors covers this package: "+
				"add it to the floors table in test/floors_test.go, as DESIGN.md § Packages places it", name))
			continue
		}
		for _, dep := range p.Deps {
			d, ok := rel(dep)
			if !ok {
				continue
			}
			if above := matchPrefix(f.notAbove, d); above != "" {
				how := "imports"
				if !slices.Contains(p.Imports, dep) {
					how = "depends (through other packages) on"
				}
				msgs = append(msgs, fmt.Sprintf("%s %s %s, which is above its floor: %s may not depend on %s",
					name, how, d, name, strings.Join(f.notAbove, ", ")))
			}
		}
		for _, imp := range p.Imports {
			if matchPrefix(f.noImport, imp) != "" {
				msgs = append(msgs, fmt.Sprintf("%s imports %s: a leaf does no network I/O", name, imp))
			}
		}
		if f.noDial {
			msgs = append(msgs, dialUses(name, p)...)
		}
	}
	return msgs
}

// floorOf returns the row covering the module-relative package name, or
// nil. When several rows cover it, the one with the longest prefix wins.
func floorOf(rules []floor, name string) *floor {
	var best *floor
	bestLen := -1
	for i := range rules {
		if m := matchPrefix(rules[i].packages, name); m != "" && len(m) > bestLen {
			best, bestLen = &rules[i], len(m)
		}
	}
	return best
}

// matchPrefix returns the prefix that is path or a parent of it, by whole
// path elements ("edge" covers "edge/certs", not "edgeapi"), or "".
func matchPrefix(prefixes []string, path string) string {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return p
		}
	}
	return ""
}

// dialUses reports each use of a dialCalls name in the package's non-test
// files.
func dialUses(name string, p listedPackage) []string {
	var msgs []string
	fset := token.NewFileSet()
	for _, file := range p.GoFiles {
		path := filepath.Join(p.Dir, file)
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			msgs = append(msgs, fmt.Sprintf("%s: parsing %s: %v", name, file, err))
			continue
		}
		local := map[string]string{} // local import name -> package path
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if _, ok := dialCalls[ip]; !ok {
				continue
			}
			n := ip[strings.LastIndexByte(ip, '/')+1:]
			if imp.Name != nil {
				n = imp.Name.Name
			}
			local[n] = ip
		}
		if len(local) == 0 {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			if ip, ok := local[x.Name]; ok && slices.Contains(dialCalls[ip], sel.Sel.Name) {
				msgs = append(msgs, fmt.Sprintf("%s: %s uses %s.%s: a leaf does no network I/O",
					name, fset.Position(sel.Pos()), ip, sel.Sel.Name))
			}
			return true
		})
	}
	return msgs
}

// TestPackageFloorRules checks checkFloors itself on small made-up graphs:
// each broken rule is reported, and a clean graph gives nothing.
func TestPackageFloorRules(t *testing.T) {
	const mod = "example.com/m"
	dir := t.TempDir()
	write := func(name, src string) string {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	dials := write("dials.go", "package regions\n\nimport (\n\tnetpkg \"net\"\n\t\"net/netip\"\n)\n\nvar _ netip.Addr\n\nfunc probe() { _, _ = netpkg.Dial(\"tcp\", \"x:1\") }\n")
	quiet := write("quiet.go", "package regions\n\nimport \"net\"\n\nfunc split(s string) (string, string, error) { return net.SplitHostPort(s) }\n")
	rules := []floor{
		{packages: []string{"codes", "regions"}, notAbove: []string{"edge", "tunnel", "cmd"}, noImport: []string{"net/http"}, noDial: true, exist: true},
		{packages: []string{"tunnel"}, notAbove: []string{"edge", "cmd"}, exist: true},
		{packages: []string{"edge"}, notAbove: []string{"cmd"}, exist: true},
		{packages: []string{"cmd"}, notAbove: []string{"cmd"}},
	}
	pkg := func(name string, imports, deps []string, files ...string) listedPackage {
		full := func(ps []string) []string {
			var out []string
			for _, p := range ps {
				if !strings.Contains(p, ".") && p != "net" && !strings.HasPrefix(p, "net/") {
					p = mod + "/" + p
				}
				out = append(out, p)
			}
			return out
		}
		return listedPackage{ImportPath: mod + "/" + name, Dir: dir, GoFiles: files,
			Imports: full(imports), Deps: full(append(append([]string(nil), imports...), deps...))}
	}
	clean := []listedPackage{
		pkg("codes", nil, nil),
		pkg("regions", []string{"codes", "net", "net/netip"}, nil, quiet),
		pkg("tunnel", []string{"codes"}, nil),
		pkg("edge", []string{"tunnel", "regions"}, []string{"codes"}),
		pkg("edge/certs", []string{"codes"}, nil),
		pkg("cmd/tool", []string{"edge"}, []string{"tunnel", "regions", "codes"}),
	}
	replace := func(p listedPackage) []listedPackage {
		out := slices.Clone(clean)
		for i := range out {
			if out[i].ImportPath == p.ImportPath {
				out[i] = p
				return out
			}
		}
		return append(out, p)
	}
	cases := []struct {
		name string
		pkgs []listedPackage
		want string // a substring of the one message expected; "" = none
	}{
		{"clean", clean, ""},
		{"leaf imports a server", replace(pkg("codes", []string{"edge"}, nil)), "codes imports edge"},
		{"leaf depends on a server indirectly", replace(pkg("regions", []string{"codes"}, []string{"tunnel"})), "regions depends (through other packages) on tunnel"},
		{"leaf imports net/http", replace(pkg("regions", []string{"codes", "net/http"}, nil)), "regions imports net/http"},
		{"leaf dials", replace(pkg("regions", []string{"net", "net/netip"}, nil, dials)), "uses net.Dial"},
		{"tunnel imports edge", replace(pkg("tunnel", []string{"edge"}, nil)), "tunnel imports edge"},
		{"subpackage inherits its floor", replace(pkg("edge/certs", []string{"cmd/tool"}, nil)), "edge/certs imports cmd/tool"},
		{"a command imports another", replace(pkg("cmd/other", []string{"cmd/tool"}, nil)), "cmd/other imports cmd/tool"},
		{"a named leaf is gone", clean[1:], "codes: the package floors name codes"},
		{"a package no row covers", replace(pkg("events", nil, nil)), "events: no row"},
		{"prefixes match whole elements", replace(pkg("edgeapi", nil, nil)), "edgeapi: no row"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := checkFloors(mod, tc.pkgs, rules)
			if tc.want == "" {
				if len(got) != 0 {
					t.Fatalf("checkFloors reported %q, want nothing", got)
				}
				return
			}
			if len(got) != 1 || !strings.Contains(got[0], tc.want) {
				t.Fatalf("checkFloors reported %q, want one message containing %q", got, tc.want)
			}
		})
	}
}
